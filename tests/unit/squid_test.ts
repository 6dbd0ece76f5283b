import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createCacheDirs,
  EXIT_NOT_FOUND,
  parseConfig,
  problemLines,
  proxyArgs,
  SpawnError,
  warningLines,
} from "../../src/squid.ts";
import { fixture, sanitized } from "./_helpers.ts";

const PERMISSIONS = { read: true, write: true, run: true };

/** Copies fake_squid_job.sh into `dir` as an executable. */
function installFakeSquid(dir: string): string {
  const path = join(dir, "squid");
  Deno.copyFileSync(fixture("fake_squid_job.sh"), path);
  Deno.chmodSync(path, 0o755);
  return path;
}

Deno.test(
  "parseConfig() runs squid -k parse and returns its non-blank lines",
  sanitized(PERMISSIONS),
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "squid-test-" });
    try {
      const squid = installFakeSquid(dir);
      const conf = join(dir, "squid.conf");

      await t.step("a config Squid accepts", async () => {
        Deno.writeTextFileSync(conf, "http_port 3128\n");
        assert.deepEqual(await parseConfig(squid, conf), {
          success: true,
          code: 0,
          lines: [`2026/01/02 03:04:05| Processing: -k parse -f ${conf}`],
        });
      });
      await t.step("a config Squid rejects", async () => {
        Deno.writeTextFileSync(
          conf,
          "# fake-squid: fail\nbogus_directive on\n",
        );
        const job = await parseConfig(squid, conf);
        assert.equal(job.success, false);
        assert.equal(job.code, 1);
        assert.equal(job.lines.length, 4);
        assert.equal(
          job.lines.at(-1),
          `2026/01/02 03:04:05| FATAL: Bungled ${conf} line 2: ` +
            "bogus_directive on",
        );
      });
      assert.equal(
        Deno.readTextFileSync(join(dir, "calls")),
        `-k parse -f ${conf}\n`.repeat(2),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "createCacheDirs() runs squid -N -z on the config",
  sanitized(PERMISSIONS),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "squid-test-" });
    try {
      const squid = installFakeSquid(dir);
      const conf = join(dir, "squid.conf");
      Deno.writeTextFileSync(
        conf,
        "cache_dir ufs /var/spool/squid 100 16 256\n",
      );

      const job = await createCacheDirs(squid, conf);

      assert.equal(job.success, true);
      assert.equal(
        Deno.readTextFileSync(join(dir, "calls")),
        `-N -z -f ${conf}\n`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "parseConfig() names a missing Squid binary with the shell's exit code",
  sanitized(PERMISSIONS),
  async () => {
    await assert.rejects(
      () => parseConfig("/nonexistent/squid", "/etc/squid/squid.conf"),
      (err: unknown) => {
        assert.ok(err instanceof SpawnError, String(err));
        assert.equal(err.exitCode, EXIT_NOT_FOUND);
        assert.match(err.message, /"\/nonexistent\/squid".*does not exist/);
        return true;
      },
    );
  },
);

Deno.test(
  "proxyArgs() runs Squid in the foreground at the given debug level",
  sanitized({}),
  () => {
    assert.deepEqual(proxyArgs("/etc/squid/squid.conf", 3), [
      "-N",
      "-f",
      "/etc/squid/squid.conf",
      "-d",
      "3",
    ]);
  },
);

Deno.test(
  "problemLines() and warningLines() pick what an operator must see",
  sanitized({}),
  () => {
    const lines = [
      "2026/01/02 03:04:05| Processing: http_port 3128",
      "2026/01/02 03:04:05| WARNING: BCP 177 violation. Detected " +
      "non-functional IPv6 loopback.",
      "2026/01/02 03:04:05| WARNING: cache_mem is larger than usual",
      "2026/01/02 03:04:05| ERROR: cannot open /etc/squid/list",
      "2026/01/02 03:04:05| FATAL: Bungled squid.conf line 3: x",
      "2026/01/02 03:04:05| aclParseAclLine: unrecognized ACL type 'foo'",
      "2026/01/02 03:04:05| Squid Cache (Version 6.13): Terminated abnormally.",
      "2026/01/02 03:04:05| Processing: acl errors_ok src 10.0.0.0/8",
    ];

    assert.deepEqual(problemLines(lines), lines.slice(3, 7));
    assert.deepEqual(warningLines(lines), [lines[2]]);
  },
);
