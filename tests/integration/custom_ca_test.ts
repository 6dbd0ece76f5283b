/**
 * examples/custom-ca/Dockerfile, built and used as docs/custom-ca.md says:
 * Squid in the extended image fetches an `https://` URL from an origin
 * whose certificate a private CA signed; Squid in the base image, with the
 * same config, refuses it because it cannot verify the certificate.
 */

import {
  deepStrictEqual as assertEquals,
  ok as assert,
} from "node:assert/strict";
import { join } from "node:path";
import { createCa, createServerCert } from "./_certs.ts";
import { allLogs, DOCKER, publishedPort, SANITIZED } from "./_harness.ts";
import {
  docBlock,
  docker,
  dockerQuiet,
  IMAGE,
  LOCAL_BUILDER,
  makeTempDir,
  proxyRequest,
  ROOT,
  run,
  runOriginScript,
  shellWords,
  uniqueName,
  waitFor200,
  writeReadable,
} from "./_deploy_helpers.ts";

const ORIGIN_HOST = "origin.test";
const ORIGIN_PORT = 8443;

/** A TLS origin that names itself and the path in every answer. */
const ORIGIN_SCRIPT = `
const tls = {
  cert: Deno.readTextFileSync("/srv/server.crt"),
  key: Deno.readTextFileSync("/srv/server.key"),
};
Deno.serve(
  { hostname: "0.0.0.0", port: ${ORIGIN_PORT}, ...tls, onListen() {} },
  (request) => new Response("custom-ca origin " + new URL(request.url).pathname + "\\n"),
);
`;

/**
 * Squid as a plain forward proxy; `83,3` logs the TLS verification
 * result, so the refusal can be told apart from any other TLS failure.
 */
const SQUID_CONF = `http_port 3128
pid_filename /var/run/squid/squid.pid
cache deny all
access_log stdio:/var/log/squid/access.log squid
cache_log /var/log/squid/cache.log
debug_options ALL,1 83,3
http_access allow all
`;

/** Squid's words when the origin's issuer is not in its trust store. */
const VERIFY_FAILURE = "unable to get local issuer certificate";

Deno.test({
  name:
    "examples/custom-ca/Dockerfile makes Squid trust an origin signed by a private CA",
  ...SANITIZED,
  async fn(t) {
    const dir = await makeTempDir("cephaloproxy-custom-ca-");
    const network = uniqueName("cpca-net");
    const extended = `${uniqueName("cpca-image")}:test`;
    const containers: string[] = [];
    try {
      // A private CA, an origin certificate it signed, and the build
      // context the docs describe: a directory of *.crt files.
      const ca = await createCa(join(dir, "ca"), "corp-root-ca");
      const origin = await createServerCert(join(dir, "origin"), ca, [
        ORIGIN_HOST,
      ]);
      await Deno.chmod(join(dir, "origin"), 0o755);
      await writeReadable(join(dir, "origin", "origin.ts"), ORIGIN_SCRIPT);
      await Deno.mkdir(join(dir, "my-cas"), { mode: 0o755 });
      await Deno.copyFile(ca.certPath, join(dir, "my-cas", "corp-root-ca.crt"));
      await writeReadable(join(dir, "squid.conf"), SQUID_CONF);
      assert(origin.certPath.endsWith("server.crt"));

      await t.step(
        "the documented build command builds the example",
        async () => {
          const words = shellWords(docBlock("docs/custom-ca.md", "build"));
          assertEquals(words.slice(0, 2), ["docker", "build"]);
          const args = words.slice(1).map((word) =>
            word === "cephaloproxy-custom-ca:dev" ? extended : word
          );
          args[args.length - 1] = join(dir, "my-cas");
          // Local stand-ins for the base images; no registry is reachable.
          args.splice(
            1,
            0,
            "--build-arg",
            `CEPHALOPROXY_IMAGE=${IMAGE}`,
            "--build-arg",
            `BUILDER_IMAGE=${LOCAL_BUILDER}`,
          );
          // BUILDAH_FORMAT: Podman builds Docker's format, which keeps
          // the HEALTHCHECK; Docker ignores it.
          const build = await run(DOCKER, args, {
            cwd: ROOT,
            env: { DOCKER_BUILDKIT: "1", BUILDAH_FORMAT: "docker" },
          });
          assertEquals(build.code, 0, build.stderr);
        },
      );

      await t.step(
        "the bundle keeps Debian's roots and adds the private CA",
        async () => {
          const count = async (image: string) => {
            const script = docBlock("docs/custom-ca.md", "count")
              .replaceAll("cephaloproxy-custom-ca:dev", image);
            const result = await run("bash", [
              "-c",
              `docker() { "$DOCKER" "$@"; }\nset -e\n${script}`,
            ], { env: { DOCKER } });
            assertEquals(result.code, 0, result.stderr);
            return Number(result.stdout.split("\n")[0]);
          };
          const added = await count(extended);
          assert(added > 100, `only ${added} certificates`);
          assertEquals(added, await count(IMAGE) + 1);

          const bundle = await readBundle(extended);
          const base = await readBundle(IMAGE);
          const pem = (await Deno.readTextFile(ca.certPath)).trim();
          assert(bundle.includes(pem), "the private CA is not in the bundle");
          assert(!base.includes(pem));
        },
      );

      // The origin, reachable as origin.test on a network of its own.
      await docker("network", "create", network);
      const originName = uniqueName("cpca-origin");
      containers.push(originName);
      await runOriginScript(originName, {
        dir: join(dir, "origin"),
        args: ["--network", network, "--network-alias", ORIGIN_HOST],
      });

      const startProxy = async (image: string) => {
        const name = uniqueName("cpca-proxy");
        containers.push(name);
        await docker(
          "run",
          "-d",
          "--name",
          name,
          "--network",
          network,
          "-p",
          "127.0.0.1::3128",
          "-p",
          "127.0.0.1::8080",
          "-v",
          `${join(dir, "squid.conf")}:/etc/squid/squid.conf:ro`,
          image,
        );
        const health = await publishedPort(name, 8080);
        await waitFor200(`http://127.0.0.1:${health}/ready`);
        return { name, port: await publishedPort(name, 3128) };
      };
      const url = `https://${ORIGIN_HOST}:${ORIGIN_PORT}/through-squid`;

      await t.step(
        "the extended image fetches the origin over verified TLS",
        async () => {
          const proxy = await startProxy(extended);
          const reply = await proxyRequest(
            { hostname: "127.0.0.1", port: proxy.port },
            url,
          );
          assertEquals(reply.status, 200, reply.body);
          assertEquals(reply.body, "custom-ca origin /through-squid\n");
          assert(!(await cacheLog(proxy.name)).includes(VERIFY_FAILURE));
        },
      );

      await t.step("the base image refuses the same origin", async () => {
        const proxy = await startProxy(IMAGE);
        const reply = await proxyRequest(
          { hostname: "127.0.0.1", port: proxy.port },
          url,
        );
        assertEquals(reply.status, 503);
        assertEquals(
          reply.headers.get("x-squid-error"),
          "ERR_SECURE_CONNECT_FAIL 0",
        );
        assert(!reply.body.includes("custom-ca origin"));
        const log = await cacheLog(proxy.name);
        assert(
          log.includes(`verification failure: 20 ${VERIFY_FAILURE}`),
          `no verification failure in cache.log:\n${log.slice(-2000)}\n` +
            await allLogs(proxy.name),
        );
      });
    } finally {
      for (const name of containers) await dockerQuiet("rm", "-f", "-v", name);
      await dockerQuiet("network", "rm", network);
      await dockerQuiet("image", "rm", "-f", extended);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** The CA bundle of an image, read the way docs/custom-ca.md shows. */
async function readBundle(image: string): Promise<string> {
  const container = await docker("create", image);
  try {
    const result = await run("bash", [
      "-c",
      `"$DOCKER" cp ${container}:/etc/ssl/certs/ca-certificates.crt - | tar -xO`,
    ], { env: { DOCKER } });
    assertEquals(result.code, 0, result.stderr);
    return result.stdout;
  } finally {
    await dockerQuiet("rm", container);
  }
}

/** Squid's cache.log, copied out of the container (no shell inside). */
async function cacheLog(container: string): Promise<string> {
  const result = await run("bash", [
    "-c",
    `"$DOCKER" cp ${container}:/var/log/squid/cache.log - | tar -xO`,
  ], { env: { DOCKER } });
  return result.stdout;
}
