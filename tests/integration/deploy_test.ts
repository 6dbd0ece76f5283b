/**
 * The deployment files and the commands the docs give, run for real
 * against the image under test: deploy/docker-compose.yml with Compose,
 * the Kubernetes Deployment's pod settings replayed with Docker, and the
 * marked command blocks of README.md and docs/*.md. Commands are taken
 * from the documents themselves, with only the image, container names,
 * volume names, host ports and working directory swapped for the test's.
 */

import {
  deepStrictEqual as assertEquals,
  ok as assert,
} from "node:assert/strict";
import { join } from "node:path";
import {
  allLogs,
  DOCKER,
  ENGINE,
  type Output,
  PODMAN,
  publishedPort,
  SANITIZED,
  waitFor,
  waitForExit,
} from "./_harness.ts";
import {
  docBlock,
  docker,
  dockerQuiet,
  followSslBumpComment,
  httpGet,
  IMAGE,
  makeTempDir,
  parseYamlDocuments,
  proxyRequest,
  ROOT,
  run,
  runOriginScript,
  shellWords,
  uniqueName,
  waitFor200,
  writeReadable,
} from "./_deploy_helpers.ts";

/** The deadline of the waits here, longer than the harness's default. */
const WAIT_MS = 60_000;

// deno-lint-ignore no-explicit-any
type Doc = any;

/** A plain HTTP origin that names the path it was asked for. */
const ORIGIN_SCRIPT = `Deno.serve(
  { hostname: "0.0.0.0", port: 8000, onListen() {} },
  (request) => new Response("deploy origin " + new URL(request.url).pathname + "\\n"),
);
`;

/** Runs a documented shell snippet with `docker` bound to the test's client. */
function bash(script: string, cwd?: string): Promise<Output> {
  return run("bash", ["-c", `docker() { "$DOCKER" "$@"; }\n${script}`], {
    cwd,
    env: { DOCKER },
  });
}

/** Message part of the entrypoint's lines at `level`, timestamps dropped. */
function messages(log: string, level: "INFO" | "WARN" | "ERROR"): string[] {
  const tag = `[${level}] `;
  return log.split("\n")
    .filter((line) => line.includes(tag))
    .map((line) => line.slice(line.indexOf(tag) + tag.length));
}

/**
 * A documented `docker run` with the test's image, names and free host
 * ports: `--name cephaloproxy` and `cephaloproxy-*` volumes get `prefix`,
 * `-p 127.0.0.1:H:C` becomes `-p 127.0.0.1::C`, `$PWD` becomes `cwd`.
 */
function adaptRun(words: string[], prefix: string, cwd = ""): string[] {
  assertEquals(words.slice(0, 2), ["docker", "run"]);
  return words.slice(1).flatMap((word, i, all) => {
    if (word === "cephaloproxy:dev") return IMAGE;
    if (all[i - 1] === "--name" && word === "cephaloproxy") return prefix;
    if (all[i - 1] === "-p") {
      return word.replace(/^(127\.0\.0\.1):\d+:/, "$1::");
    }
    if (all[i - 1] === "-v" && word.startsWith("cephaloproxy-")) {
      return word.replace(/^cephaloproxy-/, `${prefix}-`);
    }
    return word.replaceAll("$PWD", cwd);
  });
}

/** A documented snippet aimed at container `name` instead of "cephaloproxy". */
function withContainer(script: string, name: string): string {
  return script.replace(/(?<=\s)cephaloproxy(?=\s|:|$)/gm, name);
}

/** A container of the image serving ORIGIN_SCRIPT on port 8000. */
async function startOrigin(dir: string) {
  const name = uniqueName("cpdeploy-origin");
  await writeReadable(join(dir, "origin", "origin.ts"), ORIGIN_SCRIPT);
  await runOriginScript(name, { dir: join(dir, "origin") });
  return name;
}

// ------------------------------------------------------------- Compose

/**
 * Where Podman serves its Docker-compatible API: /run/podman/podman.sock
 * as root, under the user's runtime directory when rootless. The
 * ensure-podman scripts start the service.
 */
async function podmanSocket(): Promise<string> {
  const result = await run(DOCKER, [
    "info",
    "--format",
    "{{.Host.RemoteSocket.Path}}",
  ]);
  assertEquals(result.code, 0, result.stderr);
  return result.stdout.trim();
}

/** A Compose command and what it needs in its environment. */
interface Compose {
  command: string[];
  env: Record<string, string>;
}

/**
 * The Compose command here: the v2 plugin, else docker-compose v1. Under
 * Podman, `podman compose` (Podman 4.7 and later), else docker-compose
 * driving Podman through its Docker-compatible API socket.
 */
async function findCompose(): Promise<Compose | undefined> {
  const candidates: Compose[] = [
    { command: [DOCKER, "compose"], env: {} },
    {
      command: ["docker-compose"],
      env: PODMAN ? { DOCKER_HOST: `unix://${await podmanSocket()}` } : {},
    },
  ];
  for (const candidate of candidates) {
    const [cmd, ...args] = candidate.command;
    try {
      const result = await run(cmd, [...args, "version"], {
        env: candidate.env,
      });
      if (result.code === 0 && await hasSocket(candidate)) return candidate;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  return undefined;
}

/** Whether the API socket a Compose command is pointed at, if any, exists. */
async function hasSocket(compose: Compose): Promise<boolean> {
  const host = compose.env.DOCKER_HOST;
  if (!host) return true;
  try {
    return (await Deno.stat(host.replace(/^unix:\/\//, ""))).isSocket ?? false;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    return false;
  }
}

const COMPOSE = await findCompose();
const COMPOSE_FILE = "deploy/docker-compose.yml";

Deno.test({
  name:
    "deploy/docker-compose.yml runs the proxy read-only in front of an origin",
  ...SANITIZED,
  ignore: COMPOSE === undefined,
  async fn(t) {
    const [cmd, ...base] = COMPOSE!.command;
    const dir = await makeTempDir("cephaloproxy-compose-");
    const project = uniqueName("cpdeploy");
    // The origin joins the project's network as service "origin".
    const override = join(dir, "override.yml");
    await writeReadable(join(dir, "origin", "origin.ts"), ORIGIN_SCRIPT);
    await writeReadable(
      override,
      `services:\n  origin:\n    image: ${IMAGE}\n` +
        `    entrypoint: ["/usr/bin/deno", "run", "--allow-net", ` +
        `"--allow-read=/srv", "/srv/origin.ts"]\n` +
        `    volumes:\n      - ${join(dir, "origin")}:/srv:ro\n`,
    );
    const env = {
      ...COMPOSE!.env,
      CEPHALOPROXY_IMAGE: IMAGE,
      CEPHALOPROXY_HOST_PROXY_PORT: "",
      CEPHALOPROXY_HOST_HEALTH_PORT: "",
    };
    const compose = async (...args: string[]) => {
      const result = await run(cmd, [
        ...base,
        "-p",
        project,
        "-f",
        join(ROOT, COMPOSE_FILE),
        "-f",
        override,
        ...args,
      ], { cwd: ROOT, env });
      assertEquals(result.code, 0, `${args.join(" ")}: ${result.stderr}`);
      return result.stdout.trim();
    };
    /** The README's command after `docker compose -f deploy/...yml`. */
    const documented = (id: string) => {
      const words = shellWords(docBlock("README.md", id));
      assertEquals(words.slice(0, 4), [
        "docker",
        "compose",
        "-f",
        COMPOSE_FILE,
      ]);
      return words.slice(4);
    };

    try {
      await compose(...documented("compose-up"));
      const container = await compose("ps", "-q", "cephaloproxy");
      const address = (spec: string) => spec.split("\n")[0].trim();
      const proxy = address(await compose(...documented("compose-port")));
      const health = address(await compose("port", "cephaloproxy", "8080"));
      assert(proxy.startsWith("127.0.0.1:"), proxy);
      assert(health.startsWith("127.0.0.1:"), health);

      await t.step("the container has the settings of the file", async () => {
        const settings = await docker(
          "inspect",
          "--format",
          "{{.HostConfig.ReadonlyRootfs}} {{.Config.User}}",
          container,
        );
        assertEquals(settings, "true 1000:0");
        // Read from the kernel: the engines spell cap_drop and
        // security_opt differently in `inspect`.
        const status = await docker(
          "exec",
          container,
          "/usr/bin/deno",
          "eval",
          'console.log(Deno.readTextFileSync("/proc/1/status"))',
        );
        const field = (name: string) =>
          status.match(new RegExp(`^${name}:\\s*(\\S+)$`, "m"))?.[1];
        assertEquals(
          [field("CapBnd"), field("CapEff"), field("NoNewPrivs")],
          ["0000000000000000", "0000000000000000", "1"],
        );
      });

      await t.step("it becomes ready and proxies to the origin", async () => {
        await waitFor200(`http://${health}/ready`);
        const [hostname, port] = proxy.split(":");
        const reply = await waitFor(
          "the origin through the proxy",
          async () => {
            const r = await proxyRequest(
              { hostname, port: Number(port) },
              "http://origin:8000/via-compose",
            );
            return r.status === 200 ? r : undefined;
          },
          WAIT_MS,
        );
        assertEquals(reply.body, "deploy origin /via-compose\n");
        const live = await httpGet(`http://${health}/health`);
        assertEquals([live?.status, live?.body], [200, "OK\n"]);
      });

      await t.step("the access log on the logs volume records it", async () => {
        const script = withContainer(
          docBlock("docs/troubleshooting.md", "access-log"),
          container,
        );
        const log = await waitFor("the access log line", async () => {
          const result = await bash(script);
          return result.stdout.includes("GET http://origin:8000/via-compose")
            ? result.stdout
            : undefined;
        }, WAIT_MS);
        assert(log.includes("TCP_MISS/200"), log);
      });

      await t.step("the image's health check reports healthy", async () => {
        // Docker runs the first check after the image's 30 s interval;
        // Podman without systemd runs it only when asked.
        await waitFor("health status healthy", async () => {
          if (PODMAN) await dockerQuiet("healthcheck", "run", container);
          const status = await docker(
            "inspect",
            "--format",
            "{{.State.Health.Status}}",
            container,
          );
          return status === "healthy" ? status : undefined;
        }, 90_000);
      });

      await t.step(
        "stop drains and exits 0, down -v removes everything",
        async () => {
          await compose("stop");
          assertEquals(await waitForExit(container, WAIT_MS), 0);
          assert(
            (await allLogs(container)).includes("Shutdown complete"),
          );
          await compose(...documented("compose-down"));
          const left = await docker(
            "volume",
            "ls",
            "-q",
            "--filter",
            `label=com.docker.compose.project=${project}`,
          );
          assertEquals(left, "");
        },
      );
    } finally {
      await run(cmd, [
        ...base,
        "-p",
        project,
        "-f",
        join(ROOT, COMPOSE_FILE),
        "-f",
        override,
        "down",
        "-v",
        "-t",
        "1",
      ], { cwd: ROOT, env });
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// ------------------------------------------------- documented docker run

Deno.test({
  name:
    "the read-only docker run of docs/configuration.md serves, logs, reloads and stops",
  ...SANITIZED,
  async fn(t) {
    const dir = await makeTempDir("cephaloproxy-run-");
    const name = uniqueName("cpdeploy-run");
    let origin: string | undefined;
    try {
      origin = await startOrigin(dir);
      const originIp = await docker(
        "inspect",
        "--format",
        "{{.NetworkSettings.IPAddress}}",
        origin,
      );
      const args = adaptRun(
        shellWords(docBlock("docs/configuration.md", "read-only-run")),
        name,
      );
      assert(args.includes("--read-only"));
      await docker(...args);
      const health = await publishedPort(name, 8080);
      const proxy = await publishedPort(name, 3128);
      await waitFor200(`http://127.0.0.1:${health}/ready`);
      const forName = (doc: string, id: string) =>
        withContainer(docBlock(`docs/${doc}.md`, id), name);

      await t.step("it proxies and logs the request", async () => {
        const url = `http://${originIp}:8000/read-only`;
        const reply = await proxyRequest(
          { hostname: "127.0.0.1", port: proxy },
          url,
        );
        assertEquals(reply.status, 200, reply.body);
        assertEquals(reply.body, "deploy origin /read-only\n");
        await waitFor("the access log line", async () => {
          const result = await bash(forName("troubleshooting", "access-log"));
          return result.stdout.includes(`GET ${url}`) ? true : undefined;
        }, WAIT_MS);
      });

      await t.step(
        "the log commands of docs/troubleshooting.md work",
        async () => {
          const logs = await bash(forName("troubleshooting", "logs"));
          assertEquals(logs.code, 0, logs.stderr);
          assert(logs.stdout.includes("[INFO] Squid started with PID"));
          assert(logs.stdout.includes("[WARN] Cache size"));

          const listing = await bash(forName("troubleshooting", "exec-deno"));
          assertEquals(listing.code, 0, listing.stderr);
          const files = listing.stdout.trim().split("\n").sort();
          assert(files.includes("access.log") && files.includes("cache.log"));
        },
      );

      await t.step("SIGHUP validates, then reconfigures", async () => {
        const hup = await bash(forName("configuration", "reload"));
        assertEquals(hup.code, 0, hup.stderr);
        await waitFor(
          "the reload log line",
          async () =>
            (await allLogs(name)).includes(
                "[INFO] Configuration valid; Squid is reconfiguring",
              )
              ? true
              : undefined,
          WAIT_MS,
        );
        await waitFor200(`http://127.0.0.1:${health}/ready`);
      });

      await t.step(`${ENGINE} stop -t 30 ends with exit code 0`, async () => {
        await docker("stop", "-t", "30", name);
        const exit = await bash(forName("troubleshooting", "exit-code"));
        assertEquals(exit.code, 0, exit.stderr);
        const [codes, healthJson] = exit.stdout.trim().split("\n");
        assertEquals(codes, "0 false");
        assert(JSON.parse(healthJson).Status);
        const log = await allLogs(name);
        for (
          const line of [
            "[INFO] Received shutdown signal, initiating graceful shutdown...",
            "[INFO] Shutting down Squid...",
            "[INFO] Shutdown complete",
          ]
        ) assert(log.includes(line), line);
      });
    } finally {
      await dockerQuiet("rm", "-f", "-v", name);
      if (origin) await dockerQuiet("rm", "-f", origin);
      await dockerQuiet("volume", "rm", `${name}-cache`, `${name}-logs`);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "--help, --validate-only and bad input answer as the docs say",
  ...SANITIZED,
  async fn(t) {
    const dir = await makeTempDir("cephaloproxy-validate-");
    const troubleshooting = await Deno.readTextFile(
      join(ROOT, "docs/troubleshooting.md"),
    );
    const configuration = await Deno.readTextFile(
      join(ROOT, "docs/configuration.md"),
    );
    const runDoc = (doc: string, id: string, conf?: string) => {
      const words = shellWords(docBlock(doc, id));
      const args = adaptRun(words, "unused", dir);
      if (conf) {
        const at = args.findIndex((arg) =>
          arg.endsWith("/squid.conf:/etc/squid/squid.conf:ro")
        );
        args[at] = `${conf}:/etc/squid/squid.conf:ro`;
      }
      return run(DOCKER, args);
    };

    try {
      await t.step("--help prints the usage", async () => {
        const help = await runDoc("docs/configuration.md", "help");
        assertEquals(help.code, 0, help.stderr);
        assert(
          help.stdout.startsWith(
            "Usage: cephaloproxy [--validate-only] [--help]",
          ),
        );
      });

      await t.step("the default config can be printed", async () => {
        const words = shellWords(
          docBlock("docs/configuration.md", "print-default"),
        );
        const result = await run(DOCKER, adaptRun(words, "unused"));
        assertEquals(result.code, 0, result.stderr);
        assertEquals(
          result.stdout,
          await Deno.readTextFile(join(ROOT, "src/default-squid.conf")) + "\n",
        );
      });

      await t.step(
        "a valid config passes with the documented summary",
        async () => {
          await writeReadable(
            join(dir, "squid.conf"),
            await Deno.readTextFile(join(ROOT, "src/default-squid.conf")),
          );
          const result = await runDoc("docs/troubleshooting.md", "validate");
          assertEquals(result.code, 0, result.stderr);
          const summary = messages(result.stdout, "INFO").at(-1)!;
          assert(summary.startsWith("Validation passed: "), summary);
          // The counts follow the default config; the wording is the doc's.
          const pattern = (line: string) => line.replace(/\d+/g, "N");
          const documented = troubleshooting.split("\n")
            .filter((line) => line.includes("[INFO] Validation passed: "))
            .map((line) => pattern(line.trim().slice("[INFO] ".length)));
          assertEquals(documented, [pattern(summary)]);
        },
      );

      await t.step(
        "an invalid config fails with the documented lines",
        async () => {
          const bad = join(dir, "bad.conf");
          await writeReadable(
            bad,
            "http_port 3128\npid_filename none\nhttp_acces allow all\n",
          );
          const result = await runDoc(
            "docs/troubleshooting.md",
            "validate",
            bad,
          );
          assertEquals(result.code, 1);
          const errors = messages(result.stderr, "ERROR");
          assertEquals(errors.length, 3, errors.join("\n"));
          for (const line of errors) {
            assert(troubleshooting.includes(`[ERROR] ${line}`), line);
          }
        },
      );

      await t.step(
        "an unknown flag and a service-link variable exit 1",
        async () => {
          const flag = await run(DOCKER, ["run", "--rm", IMAGE, "--bogus"]);
          assertEquals(flag.code, 1);
          const link = await run(DOCKER, [
            "run",
            "--rm",
            "-e",
            "SQUID_PORT=tcp://10.96.0.12:3128",
            IMAGE,
          ]);
          assertEquals(link.code, 1);
          const [line] = messages(link.stderr, "ERROR");
          assert(troubleshooting.includes(line), line);
          assert(configuration.includes(line), line);
        },
      );

      await t.step(
        "docs/migration.md's version command names Squid 6",
        async () => {
          const words = shellWords(
            docBlock("docs/migration.md", "squid-version"),
          );
          const result = await run(DOCKER, adaptRun(words, "unused"));
          assertEquals(result.code, 0, result.stderr);
          assert(
            /^Squid Cache: Version 6\./.test(result.stdout),
            result.stdout,
          );
        },
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// ----------------------------------------------------------------- SSL-bump

Deno.test({
  name:
    "the SSL-bump example of docs/ssl-bump.md starts and its errors are quoted",
  ...SANITIZED,
  async fn(t) {
    const dir = await makeTempDir("cephaloproxy-bump-");
    const doc = await Deno.readTextFile(join(ROOT, "docs/ssl-bump.md"));
    const names: string[] = [];
    /** The documented run; `secretDir` stands in for ./ssl_cert. */
    const start = async (secretDir = join(dir, "ssl_cert")) => {
      const name = uniqueName("cpdeploy-bump");
      names.push(name);
      const args = adaptRun(
        shellWords(docBlock("docs/ssl-bump.md", "bump-run")),
        name,
        dir,
      ).map((arg) => arg.replace(`${dir}/ssl_cert:`, `${secretDir}:`));
      await docker(...args);
      return name;
    };

    try {
      await t.step("the documented CA commands make a CA", async () => {
        const script = docBlock("docs/ssl-bump.md", "make-ca")
          .replaceAll("sudo ", "");
        const made = await bash(script, dir);
        assertEquals(made.code, 0, made.stderr);
        const text = await run("openssl", [
          "x509",
          "-noout",
          "-ext",
          "basicConstraints",
          "-in",
          join(dir, "ssl_cert/tls.crt"),
        ]);
        assert(text.stdout.includes("CA:TRUE"), text.stdout);
      });

      await t.step(
        "the documented config and docker run start with SSL-bump",
        async () => {
          await writeReadable(
            join(dir, "squid.conf"),
            docBlock("docs/ssl-bump.md", "bump-conf"),
          );
          const name = await start();
          const health = await publishedPort(name, 8080);
          await waitFor200(`http://127.0.0.1:${health}/ready`);
          const log = await allLogs(name);
          for (
            const line of [
              "[INFO] SSL-bump detected in configuration",
              "[INFO] SSL certificates validated and merged",
              "[INFO] SSL certificate database created: /var/lib/squid/ssl_db",
            ]
          ) {
            assert(log.includes(line), line);
            assert(doc.includes(line), line);
          }
          assertEquals(
            messages(log, "WARN").filter((l) => l.startsWith("Certificate")),
            [],
          );
        },
      );

      await t.step(
        "a missing secret and an encrypted key fail as quoted",
        async () => {
          // Missing secret: an empty directory in its place.
          const empty = join(dir, "empty");
          await Deno.mkdir(empty, { mode: 0o755 });
          await Deno.chmod(empty, 0o755);
          const missing = await start(empty);

          // Encrypted key.
          const locked = join(dir, "locked");
          await Deno.mkdir(locked, { mode: 0o755 });
          await Deno.chmod(locked, 0o755);
          await Deno.copyFile(
            join(dir, "ssl_cert/tls.crt"),
            join(locked, "tls.crt"),
          );
          const enc = await run("openssl", [
            "pkey",
            "-in",
            join(dir, "ssl_cert/tls.key"),
            "-aes256",
            "-passout",
            "pass:secret",
            "-out",
            join(locked, "tls.key"),
          ]);
          assertEquals(enc.code, 0, enc.stderr);
          await Deno.chmod(join(locked, "tls.key"), 0o644);
          const encrypted = await start(locked);

          for (const name of [missing, encrypted]) {
            assertEquals(await waitForExit(name, WAIT_MS), 1);
            const errors = messages(await allLogs(name), "ERROR");
            assertEquals(errors.length, 2, errors.join("\n"));
            for (const line of errors) assert(doc.includes(line), line);
          }
        },
      );

      await t.step({
        name: "kubectl makes the documented TLS secret",
        ignore: !(await hasCommand("kubectl")),
        fn: async () => {
          const words = shellWords(docBlock("docs/ssl-bump.md", "k8s-secret"));
          assertEquals(words[0], "kubectl");
          const result = await run("kubectl", [
            ...words.slice(1),
            "--dry-run=client",
            "-o",
            "yaml",
          ], { cwd: dir });
          assertEquals(result.code, 0, result.stderr);
          const [secret] = parseYamlDocuments(result.stdout) as Doc[];
          assertEquals(secret.type, "kubernetes.io/tls");
          assertEquals(secret.metadata.name, "cephaloproxy-ca");
          assertEquals(Object.keys(secret.data).sort(), ["tls.crt", "tls.key"]);
        },
      });
    } finally {
      for (const name of names) await dockerQuiet("rm", "-f", "-v", name);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// ------------------------------------------------------- image contents

Deno.test({
  name: "docs/migration.md lists exactly the helpers the image has",
  ...SANITIZED,
  async fn() {
    const script = docBlock("docs/migration.md", "list-helpers")
      .replaceAll("cephaloproxy:dev", IMAGE);
    const result = await bash(script);
    assertEquals(result.code, 0, result.stderr);
    const listed = result.stdout.split("\n")
      .filter((line) => line.startsWith("usr/lib/squid/"))
      .map((line) => line.slice("usr/lib/squid/".length))
      .filter((name) => name !== "")
      .sort();
    const documented = docBlock("docs/migration.md", "helpers").trim()
      .split("\n").sort();
    assertEquals(listed, documented);
    const dropped = docBlock("docs/migration.md", "dropped-helpers").trim()
      .split("\n");
    for (const name of dropped) assert(!listed.includes(name), name);
  },
});

Deno.test({
  name: "docs/security.md: no shell in the image, and the image report",
  ...SANITIZED,
  async fn() {
    const words = shellWords(docBlock("docs/security.md", "no-shell"));
    const shell = await run(DOCKER, adaptRun(words, "unused"));
    assertEquals(shell.code, 127);
    assert(shell.stderr.includes("stat /bin/sh: no such file or directory"));

    const report = docBlock("docs/security.md", "image-report").trim()
      .replace("cephaloproxy:dev", IMAGE);
    const result = await bash(report, ROOT);
    assertEquals(result.code, 0, result.stderr);
    for (
      const part of [
        "dpkg records",
        "squid-openssl",
        "files without a dpkg record",
      ]
    ) {
      assert(result.stdout.includes(part), part);
    }
    const setuid = await bash(
      docBlock("docs/security.md", "no-setuid").replaceAll(
        "cephaloproxy:dev",
        IMAGE,
      ),
    );
    assertEquals(setuid.stdout.trim().split("\n").length, 1, setuid.stdout);
    assert(/^[0-9a-f]{64}$/.test(setuid.stdout.trim()), setuid.stdout);

    for (const file of ["usr/bin/deno", "usr/share/cephaloproxy/squid.conf"]) {
      assert(result.stdout.includes(`  ${file}\n`), file);
    }
  },
});

// ---------------------------------------------------- Kubernetes replay

/**
 * Runs the Deployment's container under Docker with the pod's settings:
 * user and groups, read-only root, no capabilities, no privilege
 * escalation, environment, the ConfigMap and secret as read-only files,
 * the claim as a directory owned by the fsGroup, emptyDirs as 0777 tmpfs.
 */
async function replayPod(options: {
  dir: string;
  name: string;
  conf: string;
  uid: number;
  fsGroup: number;
  secret?: { cert: string; key: string };
}) {
  const deployment = parseYamlDocuments(
    await Deno.readTextFile(join(ROOT, "deploy/kubernetes/deployment.yaml")),
  )[0] as Doc;
  const pod = deployment.spec.template.spec;
  const [container] = pod.containers;
  const context = container.securityContext;
  const volumes = new Map<string, Doc>(
    pod.volumes.map((v: Doc) => [v.name, v]),
  );
  const { dir, fsGroup } = options;

  const args = [
    "run",
    "-d",
    "--name",
    options.name,
    "--user",
    `${options.uid}:${pod.securityContext.runAsGroup ?? 0}`,
    "--group-add",
    String(fsGroup),
  ];
  if (context.readOnlyRootFilesystem) {
    args.push("--read-only");
  }
  if (context.allowPrivilegeEscalation === false) {
    args.push("--security-opt", "no-new-privileges");
  }
  for (const cap of context.capabilities.drop) args.push("--cap-drop", cap);
  for (const variable of container.env ?? []) {
    args.push("-e", `${variable.name}=${variable.value}`);
  }
  for (const port of container.ports) {
    args.push("-p", `127.0.0.1::${port.containerPort}`);
  }

  for (const mount of container.volumeMounts) {
    const volume = volumes.get(mount.name);
    const host = join(dir, "volumes", mount.name);
    if (volume.configMap) {
      await writeReadable(join(host, mount.subPath), options.conf);
      args.push("-v", `${join(host, mount.subPath)}:${mount.mountPath}:ro`);
    } else if (volume.secret) {
      await Deno.mkdir(host, { recursive: true, mode: 0o755 });
      await Deno.chmod(host, 0o755);
      if (options.secret) {
        for (
          const [file, from] of [["tls.crt", options.secret.cert], [
            "tls.key",
            options.secret.key,
          ]]
        ) {
          await Deno.copyFile(from, join(host, file));
          await Deno.chown(join(host, file), 0, fsGroup);
          await Deno.chmod(join(host, file), volume.secret.defaultMode);
        }
      }
      args.push("-v", `${host}:${mount.mountPath}:ro`);
    } else if (volume.persistentVolumeClaim) {
      await Deno.mkdir(host, { recursive: true });
      await Deno.chown(host, 0, fsGroup);
      await Deno.chmod(host, 0o2775);
      args.push("-v", `${host}:${mount.mountPath}`);
    } else if (volume.emptyDir) {
      args.push(
        "--mount",
        `type=tmpfs,dst=${mount.mountPath},tmpfs-mode=0777`,
      );
    } else {
      throw new TypeError(`Volume ${mount.name} has a type this replay lacks`);
    }
  }
  args.push(IMAGE);
  await docker(...args);

  // The probes, as the kubelet sends them.
  const healthPort = container.ports.find((p: Doc) => p.name === "health");
  const health = await publishedPort(options.name, healthPort.containerPort);
  for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
    await waitFor200(
      `http://127.0.0.1:${health}${container[probe].httpGet.path}`,
    );
  }
  return { grace: pod.terminationGracePeriodSeconds as number };
}

Deno.test({
  name:
    "the Kubernetes Deployment's pod settings run the image, also as an OpenShift UID",
  ...SANITIZED,
  async fn(t) {
    const dir = await makeTempDir("cephaloproxy-pod-");
    const names: string[] = [];
    const configMap = parseYamlDocuments(
      await Deno.readTextFile(join(ROOT, "deploy/kubernetes/configmap.yaml")),
    )[0] as Doc;
    const conf: string = configMap.data["squid.conf"];

    try {
      await t.step("as UID 1000 with the ConfigMap as shipped", async () => {
        const name = uniqueName("cpdeploy-pod");
        names.push(name);
        const { grace } = await replayPod({
          dir: join(dir, "plain"),
          name,
          conf,
          uid: 1000,
          fsGroup: 0,
        });
        await docker("stop", "-t", String(grace), name);
        assertEquals(await waitForExit(name, WAIT_MS), 0);
      });

      await t.step("as an arbitrary UID with SSL-bump turned on", async () => {
        const secretDir = join(dir, "ca");
        await Deno.mkdir(secretDir, { recursive: true });
        const made = await run("openssl", [
          "req",
          "-x509",
          "-newkey",
          "rsa:2048",
          "-noenc",
          "-days",
          "2",
          "-subj",
          "/CN=replay CA",
          "-keyout",
          join(secretDir, "tls.key"),
          "-out",
          join(secretDir, "tls.crt"),
        ]);
        assertEquals(made.code, 0, made.stderr);

        const name = uniqueName("cpdeploy-pod");
        names.push(name);
        // OpenShift: a UID and an fsGroup from the namespace's range,
        // primary group 0.
        await replayPod({
          dir: join(dir, "openshift"),
          name,
          conf: followSslBumpComment(conf),
          uid: 1000670000,
          fsGroup: 1000670000,
          secret: {
            cert: join(secretDir, "tls.crt"),
            key: join(secretDir, "tls.key"),
          },
        });
        const log = await allLogs(name);
        assert(log.includes("[INFO] Running as UID:1000670000 GID:0"), log);
        assert(log.includes("[INFO] SSL certificates validated and merged"));
        assert(log.includes("[INFO] SSL certificate database created"));
      });
    } finally {
      for (const name of names) await dockerQuiet("rm", "-f", "-v", name);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

async function hasCommand(cmd: string): Promise<boolean> {
  try {
    return (await run(cmd, ["version", "--client"])).code === 0;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}
