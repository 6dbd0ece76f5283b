import assert from "node:assert/strict";
import { join } from "node:path";
import { readSettings, type Settings } from "../../src/settings.ts";
import {
  chooseConfig,
  MSG_PARSE_FAILED,
  validate,
} from "../../src/validate.ts";
import {
  captureLog,
  fixture,
  type LoggedLine,
  pathExists,
  sanitized,
  writeFiles,
} from "./_helpers.ts";

const PERMISSIONS = {
  read: true,
  write: true,
  run: true,
  sys: ["hostname" as const],
};
const ROOT = { uid: 0, gid: 0 };

/**
 * Settings for a config under `dir`: squid.conf is the mounted config,
 * default.conf the built-in one and `squid` the fake Squid binary.
 */
function settingsIn(dir: string): Settings {
  const squid = join(dir, "squid");
  Deno.copyFileSync(fixture("fake_squid_job.sh"), squid);
  Deno.chmodSync(squid, 0o755);
  const vars: Record<string, string> = {
    CEPHALOPROXY_CONFIG: join(dir, "squid.conf"),
    CEPHALOPROXY_DEFAULT_CONFIG: join(dir, "default.conf"),
    CEPHALOPROXY_SQUID: squid,
    CEPHALOPROXY_SSL_CERT_DIR: join(dir, "ssl_cert"),
    CEPHALOPROXY_RUNTIME_DIR: join(dir, "run"),
  };
  return readSettings([], (name) => vars[name]);
}

/** Runs validate() with the log captured. */
async function validateLogged(settings: Settings) {
  const capture = captureLog();
  try {
    const validation = await validate(settings, ROOT);
    return { validation, log: capture.lines };
  } finally {
    capture.restore();
  }
}

function text(lines: LoggedLine[]): string[] {
  return lines.map(({ level, line }) =>
    `${level} ${line.replace(/^\S+ \[\w+\] /, "")}`
  );
}

Deno.test(
  "chooseConfig() prefers the mounted config to the built-in one",
  sanitized(PERMISSIONS),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "validate-test-" });
    const capture = captureLog();
    try {
      const settings = settingsIn(dir);

      assert.equal(chooseConfig(settings), settings.defaultConfigPath);
      Deno.writeTextFileSync(settings.configPath, "http_port 3128\n");
      assert.equal(chooseConfig(settings), settings.configPath);

      assert.deepEqual(text(capture.lines), [
        "INFO Using default configuration",
        `INFO Using custom configuration: ${settings.configPath}`,
      ]);
    } finally {
      capture.restore();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "validate() passes a config whose paths exist and that Squid accepts",
  sanitized(PERMISSIONS),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "validate-test-" });
    try {
      const settings = settingsIn(dir);
      writeFiles(dir, {
        "squid.conf": [
          "http_port 3128",
          `cache_dir ufs ${dir}/cache 100 16 256`,
          `access_log stdio:${dir}/logs/access.log squid`,
          `cache_log ${dir}/logs/cache.log`,
          `acl blocked dstdomain "${dir}/blocked.txt"`,
          "",
        ].join("\n"),
        "cache/.keep": "",
        "logs/.keep": "",
        "blocked.txt": ".example\n",
      });

      const { validation } = await validateLogged(settings);

      assert.deepEqual(validation.problems, []);
      assert.equal(validation.configPath, settings.configPath);
      assert.equal(validation.pathsChecked, 4);
      assert.equal(validation.sslBump, false);
      assert.deepEqual(
        validation.conf?.directives.map((d) => d.name),
        ["http_port", "cache_dir", "access_log", "cache_log", "acl"],
      );
      assert.equal(
        Deno.readTextFileSync(join(dir, "calls")),
        `-k parse -f ${settings.configPath}\n`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "validate() stops at a config that does not read",
  sanitized(PERMISSIONS),
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "validate-test-" });
    try {
      const settings = settingsIn(dir);
      const conf = settings.configPath;
      const cases: [string, string, string][] = [
        [
          "unterminated quote",
          'http_port 3128\nacl x dstdomain "/list\n',
          `Cannot read configuration: Unterminated quote at ${conf}:2; ` +
          'close the "..." parameter',
        ],
        [
          "include of a missing file",
          `include ${dir}/conf.d/*.conf\n`,
          `Cannot read configuration: "include ${dir}/conf.d/*.conf" at ` +
          `${conf}:1 matches no file; mount the file or remove the include`,
        ],
      ];
      for (const [name, body, problem] of cases) {
        await t.step(name, async () => {
          Deno.writeTextFileSync(conf, body);
          const { validation } = await validateLogged(settings);
          assert.deepEqual(validation.problems, [problem]);
          assert.equal(validation.conf, undefined);
        });
      }
      assert.equal(pathExists(join(dir, "calls")), false);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "validate() stops at missing volumes before asking Squid",
  sanitized(PERMISSIONS),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "validate-test-" });
    try {
      const settings = settingsIn(dir);
      Deno.writeTextFileSync(
        settings.configPath,
        `http_port 3128\ncache_dir ufs ${dir}/cache 100 16 256\n` +
          `coredump_dir ${dir}/cache\ncache_log ${dir}/logs/cache.log\n`,
      );

      const { validation } = await validateLogged(settings);

      assert.equal(validation.pathsChecked, 3);
      assert.deepEqual(validation.problems, [
        `Required directory "${dir}/cache" (cache_dir at ` +
        `${settings.configPath}:2) does not exist; mount a writable volume ` +
        "there or change the directive",
        `Required directory "${dir}/logs" (cache_log at ` +
        `${settings.configPath}:4) does not exist; mount a writable volume ` +
        "there or change the directive",
      ]);
      assert.equal(pathExists(join(dir, "calls")), false);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "validate() reports Squid's errors and the legacy failure line",
  sanitized(PERMISSIONS),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "validate-test-" });
    try {
      const settings = settingsIn(dir);
      const conf = settings.configPath;
      Deno.writeTextFileSync(
        conf,
        "# fake-squid: fail\nbogus_directive on\nhttp_port 3128\n",
      );

      const { validation, log } = await validateLogged(settings);

      assert.deepEqual(validation.problems, [
        `squid: FATAL: Bungled ${conf} line 2: bogus_directive on`,
        `${MSG_PARSE_FAILED} squid -k parse rejected ${conf}; fix the ` +
        "lines above",
      ]);
      const warnings = text(log).filter((line) => line.startsWith("WARN"));
      assert.deepEqual(warnings, [
        "WARN squid: WARNING: (B) '::/0' is a subnetwork of (A) '::/0'",
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "validate() falls back to the built-in config when none is mounted",
  sanitized(PERMISSIONS),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "validate-test-" });
    try {
      const settings = settingsIn(dir);
      Deno.writeTextFileSync(settings.defaultConfigPath, "http_port 3128\n");

      const { validation } = await validateLogged(settings);

      assert.deepEqual(validation.problems, []);
      assert.equal(validation.configPath, settings.defaultConfigPath);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
