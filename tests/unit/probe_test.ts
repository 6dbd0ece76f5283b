import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { sanitized } from "./_helpers.ts";

const PROBE = fileURLToPath(new URL("../../src/probe.ts", import.meta.url));

/** Runs probe.ts with the image's permissions; returns its exit code. */
async function runProbe(healthPort: number): Promise<number> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-config",
      "--no-lock",
      "--no-remote",
      "--no-npm",
      "--allow-net=127.0.0.1",
      "--allow-env=HEALTH_PORT",
      PROBE,
    ],
    env: { HEALTH_PORT: String(healthPort), NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(stderr, "", "probe.ts wrote to stderr");
  return output.code;
}

Deno.test(
  "probe.ts exits 0 for a 200 from /health and 1 otherwise",
  sanitized({ read: true, run: true, net: ["127.0.0.1"] }),
  async (t) => {
    const cases: [string, number, number][] = [
      ["/health answers 200", 200, 0],
      ["/health answers 503", 503, 1],
    ];
    for (const [name, status, code] of cases) {
      await t.step(name, async () => {
        const paths: string[] = [];
        await using server = Deno.serve({
          hostname: "127.0.0.1",
          port: 0,
          onListen: () => {},
        }, (request) => {
          paths.push(new URL(request.url).pathname);
          return new Response("body\n", { status });
        });

        assert.equal(await runProbe(server.addr.port), code);
        assert.deepEqual(paths, ["/health"]);
      });
    }
    await t.step("nothing listens", async () => {
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const { port } = listener.addr;
      listener.close();
      assert.equal(await runProbe(port), 1);
    });
  },
);
