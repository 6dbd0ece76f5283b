/**
 * The health server on port 8080, with the legacy image's status codes,
 * content type and bodies.
 */

import assert from "node:assert/strict";
import { getHealth, Lab, SANITIZED, waitForReady } from "./_harness.ts";

Deno.test(
  "health server answers /health, /ready and other paths like the legacy image",
  SANITIZED,
  async (t) => {
    await using lab = await Lab.create();
    const proxy = await lab.startProxy();
    await waitForReady(proxy);

    await t.step("/health answers 200 text/plain OK", async () => {
      const reply = await getHealth(proxy, "/health");
      assert.equal(reply.status, 200);
      assert.match(reply.contentType ?? "", /^text\/plain\b/);
      assert.equal(reply.body, "OK\n");
    });

    await t.step("/ready answers 200 text/plain READY", async () => {
      const reply = await getHealth(proxy, "/ready");
      assert.equal(reply.status, 200);
      assert.match(reply.contentType ?? "", /^text\/plain\b/);
      assert.equal(reply.body, "READY\n");
    });

    await t.step(
      "an unknown path answers 404 naming both endpoints",
      async () => {
        const reply = await getHealth(proxy, "/no-such-endpoint");
        assert.equal(reply.status, 404);
        assert.match(reply.contentType ?? "", /^text\/plain\b/);
        assert.ok(reply.body.includes("/health"), reply.body);
        assert.ok(reply.body.includes("/ready"), reply.body);
      },
    );

    await t.step(
      "ten concurrent clients get answers within a second",
      async () => {
        const started = performance.now();
        const replies = await Promise.all(
          Array.from(
            { length: 10 },
            (_, i) => getHealth(proxy, i % 2 === 0 ? "/health" : "/ready"),
          ),
        );
        const elapsedMs = performance.now() - started;
        assert.deepEqual(
          replies.map((reply) => reply.status),
          Array(10).fill(200),
        );
        assert.ok(elapsedMs < 1000, `took ${elapsedMs.toFixed(0)} ms`);
      },
    );
  },
);
