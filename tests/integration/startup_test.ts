/**
 * The image started as is, with no volumes and no config: the built-in
 * default config serves a proxied GET end to end.
 */

import assert from "node:assert/strict";
import {
  allLogs,
  curlViaProxy,
  Lab,
  originCount,
  SANITIZED,
  waitForFileLine,
  waitForReady,
} from "./_harness.ts";

/** Lines operators grep for, worded as the legacy image worded them. */
const LEGACY_LINES = [
  /^\S+Z \[INFO\] Running as UID:1000 GID:0$/m,
  /^\S+Z \[INFO\] Using default configuration$/m,
  /^\S+Z \[INFO\] Configuration validation passed$/m,
  /^\S+Z \[INFO\] Squid started with PID \d+$/m,
];

Deno.test(
  "image starts with no volumes, becomes ready and proxies a GET",
  SANITIZED,
  async () => {
    await using lab = await Lab.create();
    const origin = await lab.startOrigin();
    const proxy = await lab.startProxy();
    await waitForReady(proxy);

    const reply = await curlViaProxy(proxy, "http://allowed.test:8000/start");
    assert.equal(reply.status, 200);
    assert.ok(reply.body.startsWith(origin.banner + "\n"), reply.body);
    assert.match(reply.body, /^host=allowed\.test:8000$/m);
    assert.equal(await originCount(origin, "/start"), 1);

    await waitForFileLine(
      proxy.name,
      "/var/log/squid/access.log",
      / TCP_MISS\/200 \d+ GET http:\/\/allowed\.test:8000\/start /,
    );

    const logs = await allLogs(proxy.name);
    for (const line of LEGACY_LINES) assert.match(logs, line);
    assert.ok(!logs.includes("\u001b["), "logs contain ANSI escapes");
  },
);
