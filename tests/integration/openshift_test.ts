/**
 * Restricted runtimes: OpenShift's arbitrary UID in group 0, and a
 * read-only root filesystem with tmpfs only where the proxy writes.
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { createCa } from "./_certs.ts";
import {
  allLogs,
  assertLineWith,
  curlViaProxy,
  Lab,
  type Origin,
  originCount,
  PODMAN,
  type Proxy,
  readFixture,
  SANITIZED,
  waitForReady,
} from "./_harness.ts";

/** A UID from an OpenShift project's range; its group is always 0. */
const OPENSHIFT_USER = "1000680000:0";

/** Owned by the image's user, writable by group 0 for any other UID. */
const TMPFS_OPTIONS = "uid=1000,gid=0,mode=0775";

/** What the default config writes to: cache, logs, PID file, core dumps. */
const STATE_DIRS = [
  "/var/spool/squid",
  "/var/log/squid",
  "/var/run/squid",
  "/var/cache/squid",
];

/** What SSL-bump adds: the merged CA PEM and the cert DB. */
const SSL_BUMP_STATE_DIR = "/var/lib/squid";

function tmpfs(dirs: string[]): string[] {
  return dirs.map((dir) => `${dir}:${TMPFS_OPTIONS}`);
}

/**
 * Waits for readiness and proxies one GET twice; the second must come
 * from Squid's cache, so the origin counts one.
 */
async function assertProxiesGet(proxy: Proxy, origin: Origin, path: string) {
  await waitForReady(proxy);
  for (let i = 0; i < 2; i++) {
    const reply = await curlViaProxy(proxy, `http://allowed.test:8000${path}`);
    assert.equal(reply.status, 200, reply.body);
    assert.ok(reply.body.startsWith(origin.banner + "\n"), reply.body);
  }
  assert.equal(await originCount(origin, path), 1);
}

Deno.test(
  "image runs as an arbitrary UID in group 0, as on OpenShift",
  SANITIZED,
  async () => {
    await using lab = await Lab.create();
    const origin = await lab.startOrigin();
    const proxy = await lab.startProxy({ user: OPENSHIFT_USER });
    await assertProxiesGet(proxy, origin, "/openshift");
    assert.match(
      await allLogs(proxy.name),
      /\[INFO\] Running as UID:1000680000 GID:0$/m,
    );
  },
);

Deno.test(
  "image runs with a read-only root and tmpfs on its four state directories",
  SANITIZED,
  async (t) => {
    await using lab = await Lab.create();
    const origin = await lab.startOrigin();

    // The image's /var/run is a symlink to /run; Docker resolves it
    // inside the container, so either spelling mounts /run/squid.
    const runDirs = STATE_DIRS.map((dir) =>
      dir === "/var/run/squid" ? "/run/squid" : dir
    );
    const variants: [string, string | undefined, string[]][] = [
      ["as the image's user", undefined, STATE_DIRS],
      [`as ${OPENSHIFT_USER}`, OPENSHIFT_USER, STATE_DIRS],
      ["with /run/squid in place of /var/run/squid", undefined, runDirs],
    ];
    for (const [i, [name, user, dirs]] of variants.entries()) {
      await t.step(name, async () => {
        const proxy = await lab.startProxy({
          user,
          readOnlyRoot: true,
          tmpfs: tmpfs(dirs),
        });
        await assertProxiesGet(proxy, origin, `/read-only-${i}`);
      });
    }
  },
);

Deno.test(
  "image with a read-only root and no tmpfs exits 1 naming each directory",
  SANITIZED,
  async () => {
    await using lab = await Lab.create();
    const exited = await lab.startProxyExpectingExit({ readOnlyRoot: true });
    assert.equal(exited.code, 1, exited.stderr);
    // Podman's --read-only mounts a tmpfs on /run, where the entrypoint
    // then creates /run/squid; Docker's leaves /run read-only.
    const readOnly = STATE_DIRS.filter((dir) =>
      !(PODMAN && dir === "/var/run/squid")
    );
    for (const dir of readOnly) {
      assertLineWith(exited.stderr, [`"${dir}"`, "read-only"]);
    }
  },
);

Deno.test(
  "image with a read-only root and SSL-bump also needs /var/lib/squid as tmpfs",
  SANITIZED,
  async (t) => {
    await using lab = await Lab.create();
    const origin = await lab.startOrigin({ https: true });
    const bumpCa = await createCa(join(lab.dir, "ssl_cert"), "Bump CA");
    const options = {
      squidConf: readFixture("ssl-bump/squid.conf"),
      confD: { "origin-ca.pem": await Deno.readTextFile(origin.caCertPath!) },
      sslCertDir: dirname(bumpCa.certPath),
      readOnlyRoot: true,
    };

    await t.step("without it the container exits 1 naming it", async () => {
      const exited = await lab.startProxyExpectingExit({
        ...options,
        tmpfs: tmpfs(STATE_DIRS),
      });
      assert.equal(exited.code, 1, exited.stderr);
      assertLineWith(exited.stderr, [`"${SSL_BUMP_STATE_DIR}"`, "read-only"]);
    });

    await t.step("with it a bumped GET succeeds", async () => {
      const proxy = await lab.startProxy({
        ...options,
        tmpfs: tmpfs([...STATE_DIRS, SSL_BUMP_STATE_DIR]),
      });
      await waitForReady(proxy);
      const reply = await curlViaProxy(proxy, "https://secure.test:8443/ro", {
        caCert: bumpCa.certPath,
      });
      assert.equal(reply.status, 200, reply.body);
      assert.ok(reply.body.startsWith(origin.banner + "\n"), reply.body);
    });
  },
);
