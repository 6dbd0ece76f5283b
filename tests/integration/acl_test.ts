/**
 * Domain filtering from a mounted squid.conf and ACL files in
 * /etc/squid/conf.d/, the legacy image's main use.
 */

import assert from "node:assert/strict";
import {
  allLogs,
  curlViaProxy,
  Lab,
  originCount,
  readFixture,
  SANITIZED,
  waitForFileLine,
  waitForReady,
} from "./_harness.ts";

const ACCESS_LOG = "/var/log/squid/access.log";

Deno.test(
  "proxy with a mounted squid.conf denies the domains its conf.d ACL lists",
  SANITIZED,
  async (t) => {
    await using lab = await Lab.create();
    const origin = await lab.startOrigin();
    const proxy = await lab.startProxy({
      squidConf: readFixture("acl/squid.conf"),
      confD: {
        "blocked-domains.acl": readFixture("acl/blocked-domains.acl"),
        "also-blocked.conf": readFixture("acl/also-blocked.conf"),
      },
    });
    await waitForReady(proxy);

    await t.step("the custom configuration is the one in use", async () => {
      assert.match(
        await allLogs(proxy.name),
        /\[INFO\] Using custom configuration: \/etc\/squid\/squid\.conf$/m,
      );
    });

    await t.step("a listed domain gets 403 and TCP_DENIED", async () => {
      const reply = await curlViaProxy(proxy, "http://blocked.test:8000/a");
      assert.equal(reply.status, 403);
      await waitForFileLine(
        proxy.name,
        ACCESS_LOG,
        / TCP_DENIED\/403 \d+ GET http:\/\/blocked\.test:8000\/a /,
      );
    });

    await t.step("a subdomain of a listed .domain gets 403", async () => {
      const url = "http://sub.blocked.test:8000/b";
      assert.equal((await curlViaProxy(proxy, url)).status, 403);
      await waitForFileLine(
        proxy.name,
        ACCESS_LOG,
        / TCP_DENIED\/403 \d+ GET http:\/\/sub\.blocked\.test:8000\/b /,
      );
    });

    await t.step(
      "a domain denied by an included conf.d/*.conf gets 403",
      async () => {
        const url = "http://also-blocked.test:8000/c";
        assert.equal((await curlViaProxy(proxy, url)).status, 403);
      },
    );

    await t.step("an unlisted domain gets the origin's 200", async () => {
      const reply = await curlViaProxy(proxy, "http://allowed.test:8000/d");
      assert.equal(reply.status, 200);
      assert.ok(reply.body.startsWith(origin.banner + "\n"), reply.body);
    });

    await t.step("denied requests never reached the origin", async () => {
      for (const path of ["/a", "/b", "/c"]) {
        assert.equal(await originCount(origin, path), 0, path);
      }
      assert.equal(await originCount(origin, "/d"), 1);
    });
  },
);
