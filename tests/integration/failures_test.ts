/**
 * Startup failures: a bad config, a missing or unusable volume and bad
 * TLS files each stop the container with exit code 1 and an error on
 * stderr naming the path or directive, before anything starts.
 * `--validate-only` runs the same checks and starts nothing either way.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { createCa, encryptKey } from "./_certs.ts";
import {
  assertLineWith,
  Lab,
  type ProxyOptions,
  readFixture,
  SANITIZED,
} from "./_harness.ts";

/** The entrypoint logs this once Squid runs; a failed start must not. */
const STARTED = "Squid started";

/** A configuration the image must refuse, and what its error names. */
interface BadCase {
  name: string;
  options: ProxyOptions;
  /** Fragments one stderr line must contain. */
  names: string[][];
}

/** The base config with one `cache_dir` line replaced. */
function withCacheDir(line: string): string {
  const base = readFixture("base-squid.conf");
  const changed = base.replace(/^cache_dir .*$/m, line);
  assert.notEqual(changed, base, "base-squid.conf has no cache_dir line");
  return changed;
}

/** Builds the cases; TLS ones share two CAs made for this lab. */
async function badCases(lab: Lab): Promise<BadCase[]> {
  const caA = await createCa(join(lab.dir, "ca-a"), "CephaloProxy test A");
  const caB = await createCa(join(lab.dir, "ca-b"), "CephaloProxy test B");
  const pemA = await Deno.readTextFile(caA.certPath);
  await encryptKey(caA.keyPath, join(lab.dir, "ca-a/encrypted.key"));

  // A TLS secret dir per case, as Kubernetes would mount it.
  async function secret(dir: string, cert: string, key: string) {
    await lab.writeFile(`${dir}/tls.crt`, await Deno.readTextFile(cert));
    await lab.writeFile(`${dir}/tls.key`, await Deno.readTextFile(key), 0o640);
    return join(lab.dir, dir);
  }
  const sslBump = {
    squidConf: readFixture("ssl-bump/squid.conf"),
    confD: { "origin-ca.pem": pemA },
  };

  const rootOwned = await lab.makeDir("spool-root-0755", 0o755);
  await Deno.chown(rootOwned, 0, 0);
  const readOnly = await lab.makeDir("spool-read-only", 0o775);
  await Deno.chown(readOnly, 1000, 0);

  return [
    {
      name: "an unknown directive",
      options: {
        squidConf: readFixture("base-squid.conf") + "bogus_directive on\n",
      },
      names: [
        ["/etc/squid/squid.conf", "bogus_directive"],
        ["Configuration validation failed!"],
      ],
    },
    {
      name: "a cache_dir whose directory is not mounted",
      options: {
        squidConf: withCacheDir("cache_dir ufs /cache/squid 100 16 256"),
      },
      names: [["/cache/squid", "cache_dir"]],
    },
    {
      name: "a cache volume owned by root with mode 0755",
      options: {
        mounts: [{ host: rootOwned, container: "/var/spool/squid" }],
      },
      names: [["/var/spool/squid", "cache_dir"]],
    },
    {
      name: "a cache volume mounted read-only",
      options: {
        mounts: [{
          host: readOnly,
          container: "/var/spool/squid",
          readOnly: true,
        }],
      },
      names: [["/var/spool/squid", "read-only"]],
    },
    {
      name: "SSL-bump without the TLS secret",
      options: sslBump,
      names: [["/etc/squid/ssl_cert/tls.crt"]],
    },
    {
      name: "SSL-bump with a key that does not match the certificate",
      options: {
        ...sslBump,
        sslCertDir: await secret("mismatch", caA.certPath, caB.keyPath),
      },
      names: [[
        "/etc/squid/ssl_cert/tls.crt",
        "/etc/squid/ssl_cert/tls.key",
        "do not match",
      ]],
    },
    {
      name: "SSL-bump with an encrypted key",
      options: {
        ...sslBump,
        sslCertDir: await secret(
          "encrypted",
          caA.certPath,
          join(lab.dir, "ca-a/encrypted.key"),
        ),
      },
      names: [["/etc/squid/ssl_cert/tls.key", "encrypted"]],
    },
  ];
}

Deno.test(
  "entrypoint exits 1 and names the problem for each invalid setup",
  SANITIZED,
  async (t) => {
    await using lab = await Lab.create();
    for (const bad of await badCases(lab)) {
      await t.step(`${bad.name}: the container exits 1`, async () => {
        const exited = await lab.startProxyExpectingExit(bad.options);
        const logs = `${exited.stdout}\n${exited.stderr}`;
        assert.equal(exited.code, 1, logs);
        for (const fragments of bad.names) {
          assertLineWith(exited.stderr, fragments);
        }
        assert.ok(!logs.includes(STARTED), logs);
      });

      await t.step(`${bad.name}: --validate-only exits 1`, async () => {
        const result = await lab.runImage({
          ...bad.options,
          args: ["--validate-only"],
        });
        const logs = `${result.stdout}\n${result.stderr}`;
        assert.equal(result.code, 1, logs);
        for (const fragments of bad.names) {
          assertLineWith(result.stderr, fragments);
        }
        assert.ok(!logs.includes(STARTED), logs);
      });
    }
  },
);

Deno.test(
  "entrypoint --validate-only exits 0 for a good config and starts nothing",
  SANITIZED,
  async (t) => {
    await using lab = await Lab.create();
    const setups: [string, ProxyOptions][] = [
      ["the built-in default", {}],
      ["a mounted squid.conf with conf.d ACLs", {
        squidConf: readFixture("acl/squid.conf"),
        confD: {
          "blocked-domains.acl": readFixture("acl/blocked-domains.acl"),
          "also-blocked.conf": readFixture("acl/also-blocked.conf"),
        },
      }],
    ];
    for (const [name, options] of setups) {
      await t.step(name, async () => {
        const result = await lab.runImage({
          ...options,
          args: ["--validate-only"],
        });
        const logs = `${result.stdout}\n${result.stderr}`;
        assert.equal(result.code, 0, logs);
        assert.match(result.stdout, /\[INFO\] Validation passed/);
        assert.ok(!logs.includes(STARTED), logs);
        assert.ok(!logs.includes("Health check server started"), logs);
      });
    }
  },
);
