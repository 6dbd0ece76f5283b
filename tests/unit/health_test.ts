import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createHealthHandler,
  type HealthChecks,
  proxyAccepts,
} from "../../src/health.ts";
import { METRICS_CONTENT_TYPE } from "../../src/metrics.ts";
import { mountReadOnly, sanitized } from "./_helpers.ts";

const PERMISSIONS = { read: true, write: true, net: ["127.0.0.1"] };

/** A port on 127.0.0.1 that nothing listens on (it was free a moment ago). */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** Checks where everything is fine, with `overrides` applied. */
function checksWith(overrides: Partial<HealthChecks>): HealthChecks {
  return {
    squidProblem: () => undefined,
    draining: () => false,
    proxy: { hostname: "127.0.0.1", port: closedPort() },
    cacheDirs: [],
    configPath: "/etc/hostname",
    ...overrides,
  };
}

/** Sends one request to the handler and reads the whole reply. */
async function ask(checks: HealthChecks, path: string, method = "GET") {
  const handler = createHealthHandler(checks);
  const response = await handler(new Request(`http://x${path}`, { method }));
  return {
    status: response.status,
    type: response.headers.get("content-type"),
    body: await response.text(),
    headers: response.headers,
  };
}

Deno.test(
  "createHealthHandler() answers /health with OK while Squid accepts",
  sanitized(PERMISSIONS),
  async () => {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const checks = checksWith({
      proxy: { hostname: "127.0.0.1", port: listener.addr.port },
    });

    const reply = await ask(checks, "/health");

    assert.deepEqual(
      { status: reply.status, type: reply.type, body: reply.body },
      { status: 200, type: "text/plain", body: "OK\n" },
    );
  },
);

Deno.test(
  "createHealthHandler() answers /health with 503 and Squid's problem",
  sanitized(PERMISSIONS),
  async () => {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const checks = checksWith({
      squidProblem: () => "Squid is not running (exit code 1)",
      proxy: { hostname: "127.0.0.1", port: listener.addr.port },
    });

    const reply = await ask(checks, "/health");

    assert.deepEqual(
      { status: reply.status, type: reply.type, body: reply.body },
      {
        status: 503,
        type: "text/plain",
        body: "Squid is not running (exit code 1)\n",
      },
    );
  },
);

Deno.test(
  "createHealthHandler() answers /health with 503 when nothing listens",
  sanitized(PERMISSIONS),
  async () => {
    const port = closedPort();

    const reply = await ask(
      checksWith({ proxy: { hostname: "127.0.0.1", port } }),
      "/health",
    );

    assert.equal(reply.status, 503);
    assert.equal(
      reply.body,
      `Squid is not accepting connections on 127.0.0.1:${port}\n`,
    );
  },
);

Deno.test(
  "createHealthHandler() answers /ready with READY when all checks pass",
  sanitized(PERMISSIONS),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "health-test-" });
    try {
      using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      Deno.mkdirSync(join(dir, "cache"));
      Deno.writeTextFileSync(join(dir, "squid.conf"), "http_port 3128\n");
      const checks = checksWith({
        proxy: { hostname: "127.0.0.1", port: listener.addr.port },
        cacheDirs: [join(dir, "cache")],
        configPath: join(dir, "squid.conf"),
      });

      const reply = await ask(checks, "/ready");

      assert.deepEqual(
        { status: reply.status, type: reply.type, body: reply.body },
        { status: 200, type: "text/plain", body: "READY\n" },
      );
      assert.deepEqual([...Deno.readDirSync(join(dir, "cache"))], []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "createHealthHandler() lists each failed readiness check on its own line",
  sanitized(PERMISSIONS),
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "health-test-" });
    try {
      using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const up = { hostname: "127.0.0.1", port: listener.addr.port };
      const down = { hostname: "127.0.0.1", port: closedPort() };
      Deno.mkdirSync(join(dir, "cache"));
      Deno.writeTextFileSync(join(dir, "squid.conf"), "http_port 3128\n");
      const fine = {
        proxy: up,
        cacheDirs: [join(dir, "cache")],
        configPath: join(dir, "squid.conf"),
      };
      const cases: [string, Partial<HealthChecks>, string[]][] = [
        [
          "draining",
          { ...fine, draining: () => true },
          ["Shutting down: not taking new requests"],
        ],
        [
          "Squid not running",
          { ...fine, squidProblem: () => "Squid has not started yet" },
          ["Squid has not started yet"],
        ],
        [
          "port not accepting",
          { ...fine, proxy: down },
          [`Squid is not accepting connections on 127.0.0.1:${down.port}`],
        ],
        [
          "cache directory missing",
          { ...fine, cacheDirs: [join(dir, "cache"), join(dir, "gone")] },
          [`Cache directory not writable: ${dir}/gone`],
        ],
        [
          "config missing",
          { ...fine, configPath: join(dir, "missing.conf") },
          [`Configuration not readable: ${dir}/missing.conf`],
        ],
        [
          "everything at once",
          {
            draining: () => true,
            proxy: down,
            cacheDirs: [join(dir, "gone")],
            configPath: join(dir, "missing.conf"),
          },
          [
            "Shutting down: not taking new requests",
            `Squid is not accepting connections on 127.0.0.1:${down.port}`,
            `Cache directory not writable: ${dir}/gone`,
            `Configuration not readable: ${dir}/missing.conf`,
          ],
        ],
      ];
      for (const [name, overrides, lines] of cases) {
        await t.step(name, async () => {
          const reply = await ask(checksWith(overrides), "/ready");
          assert.equal(reply.status, 503);
          assert.equal(reply.type, "text/plain");
          assert.equal(reply.body, lines.join("\n") + "\n");
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "createHealthHandler() finds a cache directory on a read-only volume",
  sanitized({ ...PERMISSIONS, run: ["mount", "umount"] }),
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "health-test-" });
    try {
      const cache = join(dir, "cache");
      Deno.mkdirSync(cache);
      const unmount = await mountReadOnly(cache);
      await t.step({
        name: "on a read-only tmpfs",
        // Mounting needs root with CAP_SYS_ADMIN, as on the CI machine.
        ignore: !unmount,
        fn: async () => {
          try {
            using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
            const reply = await ask(
              checksWith({
                proxy: { hostname: "127.0.0.1", port: listener.addr.port },
                cacheDirs: [cache],
              }),
              "/ready",
            );
            assert.equal(reply.status, 503);
            assert.equal(
              reply.body,
              `Cache directory not writable: ${cache}\n`,
            );
          } finally {
            await unmount?.();
          }
        },
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test({
  name: "createHealthHandler() reports a cache directory replaced by a file",
  ...sanitized(PERMISSIONS),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "health-test-" });
    try {
      using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      Deno.writeTextFileSync(join(dir, "cache"), "a file");

      const reply = await ask(
        checksWith({
          proxy: { hostname: "127.0.0.1", port: listener.addr.port },
          cacheDirs: [join(dir, "cache")],
        }),
        "/ready",
      );

      assert.equal(reply.status, 503);
      assert.equal(reply.body, `Cache directory not writable: ${dir}/cache\n`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test(
  "createHealthHandler() answers HEAD through Deno.serve with no body",
  sanitized(PERMISSIONS),
  async (t) => {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const up = checksWith({
      proxy: { hostname: "127.0.0.1", port: listener.addr.port },
    });
    const cases: [string, HealthChecks, number][] = [
      ["/health", up, 200],
      ["/health", checksWith({ squidProblem: () => "down" }), 503],
      ["/ready", checksWith({ draining: () => true }), 503],
      ["/nowhere", up, 404],
    ];
    for (const [path, checks, status] of cases) {
      await t.step(`${path} ${status}`, async () => {
        await using server = Deno.serve(
          { hostname: "127.0.0.1", port: 0, onListen: () => {} },
          createHealthHandler(checks),
        );
        const url = `http://127.0.0.1:${server.addr.port}${path}`;
        const get = await fetch(url);
        const getBody = await get.text();
        const head = await fetch(url, { method: "HEAD" });
        const headBody = await head.text();

        assert.equal(head.status, status);
        assert.equal(head.headers.get("content-type"), "text/plain");
        assert.equal(headBody, "");
        assert.equal(
          head.headers.get("content-length"),
          String(new TextEncoder().encode(getBody).length),
        );
      });
    }
  },
);

Deno.test(
  "createHealthHandler() answers 404 for other paths, naming the endpoints",
  sanitized(PERMISSIONS),
  async (t) => {
    for (const path of ["/", "/healthz", "/health/", "/metrics"]) {
      await t.step(path, async () => {
        const reply = await ask(checksWith({}), path);
        assert.equal(reply.status, 404);
        assert.equal(
          reply.body,
          "Not found; endpoints are /health and /ready\n",
        );
      });
    }
  },
);

Deno.test(
  "createHealthHandler() answers 405 to methods other than GET and HEAD",
  sanitized(PERMISSIONS),
  async (t) => {
    for (const method of ["POST", "PUT", "DELETE", "OPTIONS"]) {
      await t.step(method, async () => {
        const reply = await ask(checksWith({}), "/health", method);
        assert.equal(reply.status, 405);
        assert.equal(reply.headers.get("allow"), "GET, HEAD");
        assert.equal(reply.body, "Method not allowed; use GET or HEAD\n");
      });
    }
  },
);

Deno.test(
  "createHealthHandler() serves /metrics when given a renderer",
  sanitized(PERMISSIONS),
  async () => {
    const text = "# TYPE squid_up gauge\nsquid_up 1\n";

    const reply = await ask(
      checksWith({ metrics: () => Promise.resolve(text) }),
      "/metrics",
    );

    assert.deepEqual(
      { status: reply.status, type: reply.type, body: reply.body },
      { status: 200, type: METRICS_CONTENT_TYPE, body: text },
    );
  },
);

Deno.test(
  "proxyAccepts() is true only when a listener takes the connection",
  sanitized(PERMISSIONS),
  async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const address = { hostname: "127.0.0.1", port: listener.addr.port };
    try {
      assert.equal(await proxyAccepts(address), true);
    } finally {
      listener.close();
    }

    assert.equal(await proxyAccepts(address), false);
  },
);
