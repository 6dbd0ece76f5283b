/**
 * SSL-bump: Squid decrypts HTTPS with a CA the operator mounts, verifies
 * the origin with the CA it is told to trust, and caches what it fetched.
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { createCa } from "./_certs.ts";
import {
  allLogs,
  copyFileFromContainer,
  copyFromContainer,
  curlViaProxy,
  Lab,
  originCount,
  readFixture,
  SANITIZED,
  waitForFileLine,
  waitForReady,
} from "./_harness.ts";

const ACCESS_LOG = "/var/log/squid/access.log";
const LEGACY_HTTP_PORT =
  "http_port 3128 ssl-bump cert=/var/lib/squid/squid-ca.pem ";

Deno.test(
  "proxy bumps HTTPS with a mounted TLS secret and caches the response",
  SANITIZED,
  async (t) => {
    await using lab = await Lab.create();
    const origin = await lab.startOrigin({ https: true });
    const originCaPem = await Deno.readTextFile(origin.caCertPath!);
    const bumpCa = await createCa(
      join(lab.dir, "ssl_cert"),
      "CephaloProxy test bump CA",
    );
    const proxy = await lab.startProxy({
      squidConf: readFixture("ssl-bump/squid.conf"),
      confD: { "origin-ca.pem": originCaPem },
      sslCertDir: dirname(bumpCa.certPath),
    });
    await waitForReady(proxy);
    const url = "https://secure.test:8443/bumped";

    await t.step(
      "a client trusting only the bump CA gets the origin's body",
      async () => {
        const reply = await curlViaProxy(proxy, url, {
          caCert: bumpCa.certPath,
        });
        assert.equal(reply.status, 200, reply.body);
        assert.ok(reply.body.startsWith(origin.banner + "\n"), reply.body);
        assert.match(reply.body, /^scheme=https$/m);
        await waitForFileLine(
          proxy.name,
          ACCESS_LOG,
          / TCP_MISS\/200 \d+ GET https:\/\/secure\.test:8443\/bumped /,
        );
      },
    );

    await t.step(
      "a repeat request is a cache hit the origin never sees",
      async () => {
        const reply = await curlViaProxy(proxy, url, {
          caCert: bumpCa.certPath,
        });
        assert.equal(reply.status, 200, reply.body);
        assert.ok(reply.body.startsWith(origin.banner + "\n"), reply.body);
        await waitForFileLine(
          proxy.name,
          ACCESS_LOG,
          / TCP_(MEM_)?HIT\/200 \d+ GET https:\/\/secure\.test:8443\/bumped /,
        );
        assert.equal(await originCount(origin, "/bumped"), 1);
      },
    );

    await t.step("the certificate database has certs/", async () => {
      const entries = await copyFromContainer(
        proxy.name,
        "/var/lib/squid/ssl_db",
      );
      const names = entries.map((entry) => entry.name.replace(/\/$/, ""));
      assert.ok(names.includes("ssl_db/certs"), names.join(", "));
      assert.ok(names.includes("ssl_db/index.txt"), names.join(", "));
    });

    await t.step(
      "the secret is merged into squid-ca.pem with mode 0600",
      async () => {
        const merged = await copyFileFromContainer(
          proxy.name,
          "/var/lib/squid/squid-ca.pem",
        );
        assert.equal((merged.mode & 0o777).toString(8), "600");
        const text = new TextDecoder().decode(merged.data);
        const cert = await Deno.readTextFile(bumpCa.certPath);
        const key = await Deno.readTextFile(bumpCa.keyPath);
        assert.equal(text.trim(), `${cert.trim()}\n${key.trim()}`);
      },
    );

    await t.step(
      "the logs name SSL-bump and the merged certificates",
      async () => {
        const logs = await allLogs(proxy.name);
        assert.match(logs, /\[INFO\] SSL-bump detected in configuration$/m);
        assert.match(logs, /\[INFO\] SSL certificates validated and merged$/m);
      },
    );
  },
);

Deno.test(
  "proxy bumps HTTPS with cert= and key= files outside /etc/squid/ssl_cert",
  SANITIZED,
  async () => {
    await using lab = await Lab.create();
    const origin = await lab.startOrigin({ https: true });
    const originCaPem = await Deno.readTextFile(origin.caCertPath!);
    const bumpCa = await createCa(
      join(lab.dir, "bump"),
      "CephaloProxy test bump CA",
    );
    const legacy = readFixture("ssl-bump/squid.conf");
    const squidConf = legacy.replace(
      LEGACY_HTTP_PORT,
      "http_port 3128 ssl-bump cert=/etc/squid/conf.d/bump.crt " +
        "key=/etc/squid/conf.d/bump.key ",
    );
    assert.notEqual(squidConf, legacy, "no legacy http_port line to replace");
    const proxy = await lab.startProxy({
      squidConf,
      confD: {
        "origin-ca.pem": originCaPem,
        "bump.crt": await Deno.readTextFile(bumpCa.certPath),
        "bump.key": await Deno.readTextFile(bumpCa.keyPath),
      },
    });
    await waitForReady(proxy);

    const reply = await curlViaProxy(
      proxy,
      "https://secure.test:8443/elsewhere",
      { caCert: bumpCa.certPath },
    );
    assert.equal(reply.status, 200, reply.body);
    assert.ok(reply.body.startsWith(origin.banner + "\n"), reply.body);
    assert.match(reply.body, /^scheme=https$/m);
  },
);
