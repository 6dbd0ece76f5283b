/**
 * Drives the real CephaloProxy image for the integration tests.
 *
 * Each test opens a {@linkcode Lab} with `await using`: a host temp dir, a
 * Docker network and the containers started on it, all named
 * `cpt-<random>` so that leftovers are easy to spot, and all removed when
 * the test ends, whether it passed or not. Origin servers are containers
 * of the image under test running `tests/fixtures/integration/origin.ts`
 * with the image's own Deno, reachable from Squid under the names in
 * {@linkcode ORIGIN_HOSTS} through Docker's DNS. Ports are published on
 * 127.0.0.1 only, on ports Docker picks.
 *
 * The image has no shell, so files are read out of a container with
 * `docker cp CONTAINER:PATH -`, which writes a tar stream.
 *
 * @module
 */

import assert from "node:assert/strict";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createCa, createServerCert } from "./_certs.ts";
import { dropEngineNoise, isPodman } from "./_engine.ts";

/** The Docker client; not the one first on PATH, which may not fit. */
export const DOCKER = Deno.env.get("CEPHALOPROXY_DOCKER") || "/usr/bin/docker";
/** The image under test. */
export const IMAGE = Deno.env.get("CEPHALOPROXY_IMAGE") || "cephaloproxy:test";
/** Whether {@linkcode DOCKER} is Podman's client rather than Docker's. */
export const PODMAN = isPodman(DOCKER);
/** The engine's command name, for test names that quote a command. */
export const ENGINE = PODMAN ? "podman" : "docker";

/** Test options that switch on the sanitizers (off by default in Deno 2.8+). */
export const SANITIZED = {
  sanitizeOps: true,
  sanitizeResources: true,
  sanitizeExit: true,
};

/** The names the origin answers to on a lab's network. */
export const ORIGIN_HOSTS = [
  "allowed.test",
  "blocked.test",
  "sub.blocked.test",
  "also-blocked.test",
  "secure.test",
];
/** Ports the origin listens on inside its container. */
export const ORIGIN_HTTP_PORT = 8000;
export const ORIGIN_HTTPS_PORT = 8443;

/** Test inputs: configs, ACL files and the origin script. */
export const FIXTURES = fileURLToPath(
  new URL("../fixtures/integration/", import.meta.url),
);

/** Marks every container, network and volume a test creates. */
export const LABEL = "cephaloproxy-test=1";
/** How long a container may take to become ready or to exit. */
const START_TIMEOUT_MS = 30_000;
/** The default deadline for one docker or curl command. */
const COMMAND_TIMEOUT_MS = 60_000;
const POLL_STEP_MS = 100;

/** What a finished command printed, and its exit code. */
export interface Output {
  code: number;
  stdout: string;
  stderr: string;
  bytes: Uint8Array;
}

/** How to run a command; everything is optional. */
export interface RunOptions {
  /** The deadline; `Infinity` for none. */
  timeoutMs?: number;
  /** Variables added to the inherited environment. */
  env?: Record<string, string>;
  cwd?: string;
}

/**
 * Runs a command to completion, killing it at the deadline; a non-zero
 * exit is returned, not thrown.
 *
 * @throws {Error} when the deadline passes.
 */
export async function run(
  command: string,
  args: string[],
  options: RunOptions = {},
): Promise<Output> {
  const timeoutMs = options.timeoutMs ?? COMMAND_TIMEOUT_MS;
  const controller = new AbortController();
  const timer = Number.isFinite(timeoutMs)
    ? setTimeout(() => controller.abort(), timeoutMs)
    : undefined;
  try {
    const output = await new Deno.Command(command, {
      args,
      env: options.env,
      cwd: options.cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: controller.signal,
    }).output();
    if (controller.signal.aborted) {
      throw new Error(
        `${command} ${args.join(" ")} did not finish within ${timeoutMs} ms`,
      );
    }
    const decoder = new TextDecoder();
    return {
      code: output.code,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
      bytes: output.stdout,
    };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs the Docker (or Podman) client; a non-zero exit is returned, not
 * thrown. Podman's own complaints about healthcheck timers are dropped
 * from stderr (see {@linkcode dropEngineNoise}).
 */
export async function docker(
  args: string[],
  options: RunOptions = {},
): Promise<Output> {
  const output = await run(DOCKER, args, options);
  return { ...output, stderr: dropEngineNoise(output.stderr) };
}

/**
 * Runs the Docker client and returns its trimmed stdout.
 *
 * @throws {Error} with the client's stderr when it exits non-zero.
 */
export async function dockerOk(
  args: string[],
  options: RunOptions = {},
): Promise<string> {
  const result = await docker(args, options);
  if (result.code !== 0) {
    throw new Error(
      `docker ${args.join(" ")} failed (exit code ${result.code}): ` +
        result.stderr.trim(),
    );
  }
  return result.stdout.trim();
}

/**
 * Calls `check` every 100 ms until it returns something other than
 * `undefined` or `false`, and returns that.
 *
 * @throws {Error} naming `what` when the deadline passes first.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = START_TIMEOUT_MS,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_STEP_MS));
  }
}

/** A bind mount from the host into a container. */
export interface Mount {
  host: string;
  container: string;
  readOnly?: boolean;
}

/** How to run the proxy container; everything is optional. */
export interface ProxyOptions {
  /** squid.conf text, mounted read-only at /etc/squid/squid.conf. */
  squidConf?: string;
  /** Files (name to text) mounted read-only as /etc/squid/conf.d/. */
  confD?: Record<string, string>;
  /** A host dir mounted read-only as /etc/squid/ssl_cert/. */
  sslCertDir?: string;
  mounts?: Mount[];
  /** `--tmpfs` values, e.g. `/var/log/squid:uid=1000,gid=0,mode=0775`. */
  tmpfs?: string[];
  /** `--user`, e.g. `1000680000:0`. */
  user?: string;
  /** Run with `--read-only`. */
  readOnlyRoot?: boolean;
  env?: Record<string, string>;
  /** Arguments after the image name, e.g. `--validate-only`. */
  args?: string[];
}

/** A running proxy container and its published addresses. */
export interface Proxy {
  name: string;
  /** `http://127.0.0.1:PORT` for curl's `-x`. */
  proxyUrl: string;
  /** `http://127.0.0.1:PORT` of the health server. */
  healthUrl: string;
}

/** A running origin container. */
export interface Origin {
  name: string;
  /** The first line of every body it serves, naming this origin. */
  banner: string;
  /** `http://127.0.0.1:PORT` of its HTTP port, for `/count`. */
  directUrl: string;
  /** Host path of the CA that signed its HTTPS certificate, if it has one. */
  caCertPath?: string;
}

/** How a container that was expected to stop ended. */
export interface Exited {
  code: number;
  stdout: string;
  stderr: string;
}

/** One test's isolated set of Docker resources and host files. */
export class Lab implements AsyncDisposable {
  /** `cpt-<random>`, the prefix of every name this lab gives. */
  readonly id: string;
  /** The lab's host temp dir, readable by the container user. */
  readonly dir: string;
  readonly network: string;
  #containers: string[] = [];
  #networkCreated = false;

  private constructor(id: string, dir: string) {
    this.id = id;
    this.dir = dir;
    this.network = `${id}-net`;
  }

  /** Makes the temp dir and the Docker network. */
  static async create(): Promise<Lab> {
    const id = `cpt-${crypto.randomUUID().slice(0, 8)}`;
    const dir = await Deno.makeTempDir({ prefix: `${id}-` });
    const lab = new Lab(id, dir);
    try {
      await Deno.chmod(dir, 0o755);
      await dockerOk(["network", "create", `--label=${LABEL}`, lab.network]);
      lab.#networkCreated = true;
      return lab;
    } catch (err) {
      await lab[Symbol.asyncDispose]();
      throw err;
    }
  }

  /**
   * Writes a file under the lab dir, readable by everyone (files there
   * are owned by root, as tests run as root), and returns its host path.
   */
  async writeFile(path: string, text: string, mode = 0o644): Promise<string> {
    const full = join(await this.makeDir(dirname(path)), basename(path));
    await Deno.writeTextFile(full, text);
    await Deno.chmod(full, mode);
    return full;
  }

  /**
   * Makes a directory under the lab dir with `mode`, and any missing
   * parent with 0755 whatever the umask; returns its host path.
   */
  async makeDir(path: string, mode = 0o755): Promise<string> {
    let full = this.dir;
    for (const part of path.split("/").filter((p) => p !== ".")) {
      full = join(full, part);
      try {
        await Deno.mkdir(full);
        await Deno.chmod(full, 0o755);
      } catch (err) {
        if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      }
    }
    await Deno.chmod(full, mode);
    return full;
  }

  /** A new container name in this lab, registered for removal. */
  containerName(role: string): string {
    const name = `${this.id}-${role}-${this.#containers.length + 1}`;
    this.#containers.push(name);
    return name;
  }

  /**
   * Starts the origin server with every name in {@linkcode ORIGIN_HOSTS}.
   * With `https`, it also serves HTTPS for secure.test with a certificate
   * from a new origin CA, whose certificate is in `Origin.caCertPath`.
   */
  async startOrigin(options: { https?: boolean } = {}): Promise<Origin> {
    const name = this.containerName("origin");
    const root = await this.makeDir("origin");
    let caCertPath: string | undefined;
    if (options.https) {
      const ca = await createCa(join(this.dir, "origin-ca"), "Origin CA");
      const dir = await this.makeDir("origin/tls");
      await createServerCert(dir, ca, ["secure.test"]);
      caCertPath = ca.certPath;
    }

    const origin: Origin = {
      name,
      banner: `CephaloProxy test origin ${name}`,
      directUrl: await this.runOrigin(name, { root, hosts: ORIGIN_HOSTS }),
      caCertPath,
    };
    await waitFor(`origin ${name} to answer`, async () => {
      await assertRunning(name);
      return await originCounts(origin).catch((err) => {
        if (err instanceof TypeError) return undefined;
        throw err;
      });
    });
    return origin;
  }

  /**
   * Runs `tests/fixtures/integration/origin.ts` as container `name` on the
   * lab's network under every name in `hosts`, serving from `root` (HTTPS
   * too when `root/tls/` holds a certificate); returns the
   * `http://127.0.0.1:PORT` of its published HTTP port. Does not wait.
   */
  async runOrigin(
    name: string,
    options: { root: string; hosts: string[] },
  ): Promise<string> {
    const script = join(options.root, "origin.ts");
    await Deno.copyFile(join(FIXTURES, "origin.ts"), script);
    await Deno.chmod(script, 0o644);
    await dockerOk([
      "run",
      "--detach",
      `--name=${name}`,
      `--label=${LABEL}`,
      `--network=${this.network}`,
      ...options.hosts.map((host) => `--network-alias=${host}`),
      `--publish=127.0.0.1::${ORIGIN_HTTP_PORT}`,
      `--volume=${options.root}:/srv/origin:ro`,
      "--entrypoint=/usr/bin/deno",
      IMAGE,
      ...["run", "--no-config", "--no-lock", "--allow-net"],
      "--allow-read=/srv/origin",
      "/srv/origin/origin.ts",
      name,
    ]);
    return `http://${await publishedAddress(name, ORIGIN_HTTP_PORT)}`;
  }

  /**
   * The `docker run` options for a proxy container: name, network, mounts,
   * user, read-only root, env. The caller adds ports, image and args.
   */
  async proxyRunOptions(
    name: string,
    options: ProxyOptions,
  ): Promise<string[]> {
    const mounts = [...(options.mounts ?? [])];
    if (options.squidConf !== undefined) {
      const host = await this.writeFile(
        `${name}/squid.conf`,
        options.squidConf,
      );
      mounts.push({ host, container: "/etc/squid/squid.conf", readOnly: true });
    }
    if (options.confD) {
      const dir = await this.makeDir(`${name}/conf.d`);
      for (const [file, text] of Object.entries(options.confD)) {
        await this.writeFile(`${name}/conf.d/${file}`, text);
      }
      mounts.push({
        host: dir,
        container: "/etc/squid/conf.d",
        readOnly: true,
      });
    }
    if (options.sslCertDir) {
      mounts.push({
        host: options.sslCertDir,
        container: "/etc/squid/ssl_cert",
        readOnly: true,
      });
    }

    const args = [
      `--name=${name}`,
      `--label=${LABEL}`,
      `--network=${this.network}`,
    ];
    for (const mount of mounts) {
      const suffix = mount.readOnly ? ":ro" : "";
      args.push(`--volume=${mount.host}:${mount.container}${suffix}`);
    }
    for (const tmpfs of options.tmpfs ?? []) {
      args.push(`--tmpfs=${PODMAN ? podmanTmpfs(tmpfs) : tmpfs}`);
    }
    if (options.user) args.push(`--user=${options.user}`);
    if (options.readOnlyRoot) args.push("--read-only");
    for (const [key, value] of Object.entries(options.env ?? {})) {
      args.push(`--env=${key}=${value}`);
    }
    return args;
  }

  /**
   * Starts the proxy with its proxy and health ports published on
   * 127.0.0.1; does not wait for it (see {@linkcode waitForReady}).
   */
  async startProxy(options: ProxyOptions = {}): Promise<Proxy> {
    const name = this.containerName("proxy");
    await dockerOk([
      "run",
      "--detach",
      ...await this.proxyRunOptions(name, options),
      "--publish=127.0.0.1::3128",
      "--publish=127.0.0.1::8080",
      IMAGE,
      ...(options.args ?? []),
    ]);
    return {
      name,
      proxyUrl: `http://${await publishedAddress(name, 3128)}`,
      healthUrl: `http://${await publishedAddress(name, 8080)}`,
    };
  }

  /**
   * Starts the proxy detached and waits for it to exit, as a proxy that
   * refuses to start should.
   */
  async startProxyExpectingExit(options: ProxyOptions): Promise<Exited> {
    const { name } = await this.startProxy(options);
    const code = await waitForExit(name);
    return { code, ...await containerLogs(name) };
  }

  /** Runs the image in the foreground with `--rm`, as an operator would. */
  async runImage(
    options: ProxyOptions & { entrypoint?: string },
  ): Promise<Output> {
    const name = this.containerName("run");
    const entrypoint = options.entrypoint
      ? [`--entrypoint=${options.entrypoint}`]
      : [];
    return await docker([
      "run",
      "--rm",
      ...await this.proxyRunOptions(name, options),
      ...entrypoint,
      IMAGE,
      ...(options.args ?? []),
    ], { timeoutMs: START_TIMEOUT_MS });
  }

  /** Removes the containers, the network and the temp dir. */
  async [Symbol.asyncDispose](): Promise<void> {
    const problems: string[] = [];
    if (this.#containers.length > 0) {
      // Podman 4.3 stops at the first name it does not know (a `--rm`
      // container that is gone) unless told to ignore it, and sends the
      // stop signal and waits 10 s before SIGKILL; Docker kills at once.
      const ignore = PODMAN ? ["--ignore", "--time=0"] : [];
      const result = await docker([
        "rm",
        "--force",
        ...ignore,
        ...this.#containers,
      ]);
      const leftovers = result.stderr.split("\n").filter((line) =>
        line.trim() !== "" && !line.includes("No such container")
      );
      if (leftovers.length > 0) problems.push(...leftovers);
    }
    if (this.#networkCreated) {
      const result = await docker(["network", "rm", this.network]);
      if (result.code !== 0) problems.push(result.stderr.trim());
    }
    await Deno.remove(this.dir, { recursive: true });
    if (problems.length > 0) {
      throw new Error(`Cleanup of ${this.id} failed: ${problems.join("; ")}`);
    }
  }
}

/**
 * A `--tmpfs` value for Podman 4.3, which knows no `uid=` or `gid=`: its
 * tmpfs is owned by root:0, so with `gid=0` dropped as well the directory
 * keeps the group and mode the test asked for, and the image's user and
 * OpenShift's arbitrary ones, all in group 0, write through the group.
 */
function podmanTmpfs(value: string): string {
  const at = value.indexOf(":");
  if (at < 0) return value;
  const options = value.slice(at + 1).split(",");
  if (options.some((option) => /^gid=(?!0$)/.test(option))) {
    throw new Error(`Podman cannot make a tmpfs of another group: ${value}`);
  }
  const kept = options.filter((option) => !/^[ug]id=/.test(option));
  return kept.length > 0
    ? `${value.slice(0, at)}:${kept.join(",")}`
    : value.slice(0, at);
}

/** Reads the host address Docker published for `port`, e.g. 127.0.0.1:49153. */
export async function publishedAddress(
  name: string,
  port: number,
): Promise<string> {
  let text = await dockerOk(["port", name, `${port}/tcp`]);
  if (PODMAN && text === "") {
    // Podman lists no ports once the container has exited, as one that
    // refuses to start may have already; the host port is kept here.
    const bindings = JSON.parse(
      await dockerOk([
        "inspect",
        "--format",
        "{{json .HostConfig.PortBindings}}",
        name,
      ]),
    )[`${port}/tcp`] ?? [];
    text = bindings.map((b: { HostIp: string; HostPort: string }) =>
      `${b.HostIp}:${b.HostPort}`
    ).join("\n");
  }
  const address = text.split("\n").find((line) =>
    /^127\.0\.0\.1:\d+$/.test(line.trim())
  );
  if (!address) {
    throw new Error(`${name} has no 127.0.0.1 address for ${port}: ${text}`);
  }
  return address.trim();
}

/** The host port Docker published on 127.0.0.1 for `port`. */
export async function publishedPort(
  name: string,
  port: number,
): Promise<number> {
  const address = await publishedAddress(name, port);
  return Number(address.split(":")[1]);
}

/** Returns the origin's request counts by path, read past the proxy. */
export async function originCounts(
  origin: Origin,
): Promise<Record<string, number>> {
  const response = await fetch(`${origin.directUrl}/count`);
  assert.equal(response.status, 200, `${origin.name} /count`);
  return await response.json();
}

/** How many requests the origin has received for `path`. */
export async function originCount(origin: Origin, path: string) {
  return (await originCounts(origin))[path] ?? 0;
}

/** The container's stdout and stderr so far. */
export async function containerLogs(
  name: string,
): Promise<{ stdout: string; stderr: string }> {
  const result = await docker(["logs", name]);
  assert.equal(result.code, 0, `docker logs ${name}: ${result.stderr}`);
  return { stdout: result.stdout, stderr: result.stderr };
}

/** Both log streams of a container, stdout first. */
export async function allLogs(name: string): Promise<string> {
  const { stdout, stderr } = await containerLogs(name);
  return `${stdout}\n${stderr}`;
}

/** The container's state and exit code, from `docker inspect`. */
export async function containerState(
  name: string,
): Promise<{ status: string; code: number }> {
  const text = await dockerOk([
    "inspect",
    "--format",
    "{{.State.Status}} {{.State.ExitCode}}",
    name,
  ]);
  const [status, code] = text.split(" ");
  return { status, code: Number(code) };
}

/** Throws with the container's logs if it is no longer running. */
async function assertRunning(name: string): Promise<void> {
  const state = await containerState(name);
  if (state.status === "running" || state.status === "created") return;
  const logs = await allLogs(name);
  throw new Error(
    `${name} is ${state.status} (exit code ${state.code}); logs:\n${logs}`,
  );
}

/** Waits until the container has exited; returns its exit code. */
export async function waitForExit(
  name: string,
  timeoutMs = START_TIMEOUT_MS,
): Promise<number> {
  const state = await waitFor(`${name} to exit`, async () => {
    const state = await containerState(name);
    return state.status === "exited" || state.status === "dead" ? state : false;
  }, timeoutMs);
  return state.code;
}

/** A health server reply. */
export interface HealthReply {
  status: number;
  contentType: string | null;
  body: string;
}

/** GETs `path` from the proxy container's health server. */
export async function getHealth(
  proxy: Proxy,
  path: string,
): Promise<HealthReply> {
  const response = await fetch(`${proxy.healthUrl}${path}`);
  return {
    status: response.status,
    contentType: response.headers.get("content-type"),
    body: await response.text(),
  };
}

/**
 * Waits until `/ready` answers 200.
 *
 * @throws {Error} with the container's logs when it exits first.
 */
export async function waitForReady(proxy: Proxy): Promise<void> {
  let last = "no answer";
  try {
    await waitFor(`${proxy.name} /ready to answer 200`, async () => {
      await assertRunning(proxy.name);
      try {
        const reply = await getHealth(proxy, "/ready");
        last = `${reply.status} ${reply.body.trim()}`;
        return reply.status === 200;
      } catch (err) {
        // The published port resets connections until the server listens.
        if (err instanceof TypeError) return false;
        throw err;
      }
    });
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith("Timed out")) {
      throw err;
    }
    const logs = await allLogs(proxy.name);
    throw new Error(`${err.message} (last: ${last}); logs:\n${logs}`);
  }
}

/** What curl got through the proxy. */
export interface CurlReply {
  status: number;
  body: string;
}

const STATUS_MARK = "\n--curl-status--";

/**
 * GETs `url` with curl through the proxy. For HTTPS, `caCert` is the only
 * CA curl trusts.
 *
 * @throws {Error} with curl's message when the transfer fails.
 */
export async function curlViaProxy(
  proxy: Proxy,
  url: string,
  options: { caCert?: string } = {},
): Promise<CurlReply> {
  const args = [
    "--silent",
    "--show-error",
    "--max-time",
    "20",
    "--proxy",
    proxy.proxyUrl,
    "--write-out",
    `${STATUS_MARK}%{http_code}`,
  ];
  if (options.caCert) args.push("--cacert", options.caCert);
  const result = await run("curl", [...args, url]);
  if (result.code !== 0) {
    throw new Error(
      `curl ${url} via ${proxy.name} failed (exit code ${result.code}): ` +
        result.stderr.trim(),
    );
  }
  const at = result.stdout.lastIndexOf(STATUS_MARK);
  return {
    status: Number(result.stdout.slice(at + STATUS_MARK.length)),
    body: result.stdout.slice(0, at),
  };
}

/** An entry of a tar stream. */
export interface TarEntry {
  name: string;
  /** `0` for a file, `5` for a directory, `2` for a symlink. */
  type: string;
  mode: number;
  data: Uint8Array;
}

/**
 * Copies `path` out of a container (running or not) with `docker cp` and
 * returns the tar entries, names relative to the path's parent.
 */
export async function copyFromContainer(
  name: string,
  path: string,
): Promise<TarEntry[]> {
  const result = await docker(["cp", `${name}:${path}`, "-"]);
  if (result.code !== 0) {
    throw new Error(
      `docker cp ${name}:${path} failed: ${result.stderr.trim()}`,
    );
  }
  return parseTar(result.bytes);
}

/** Copies one regular file out of a container. */
export async function copyFileFromContainer(
  name: string,
  path: string,
): Promise<TarEntry> {
  const entries = await copyFromContainer(name, path);
  const file = entries.find((entry) => entry.type === "0");
  if (!file) throw new Error(`${name}:${path} is not a regular file`);
  return file;
}

/** Reads a text file from a container, which has no shell or cat. */
export async function readContainerFile(
  name: string,
  path: string,
): Promise<string> {
  const file = await copyFileFromContainer(name, path);
  return new TextDecoder().decode(file.data);
}

/** Waits until the container's file has a line matching `pattern`. */
export async function waitForFileLine(
  name: string,
  path: string,
  pattern: RegExp,
): Promise<string> {
  return await waitFor(`${name}:${path} to match ${pattern}`, async () => {
    const text = await readContainerFile(name, path);
    return text.split("\n").find((line) => pattern.test(line));
  }, 10_000);
}

/**
 * Parses a POSIX tar stream as written by `docker cp`: ustar headers,
 * with PAX (`x`) and GNU (`L`) long names.
 */
export function parseTar(bytes: Uint8Array): TarEntry[] {
  const decoder = new TextDecoder();
  const text = (start: number, length: number) =>
    decoder.decode(bytes.subarray(start, start + length)).replace(/\0.*$/s, "");
  const entries: TarEntry[] = [];
  let longName: string | undefined;

  for (let at = 0; at + 512 <= bytes.length;) {
    if (bytes.subarray(at, at + 512).every((b) => b === 0)) break;
    const mode = parseInt(text(at + 100, 8).trim() || "0", 8);
    const size = parseInt(text(at + 124, 12).trim() || "0", 8);
    const type = text(at + 156, 1) || "0";
    // Only POSIX ustar headers have a name prefix; GNU ones keep times there.
    const posix = text(at + 257, 6) === "ustar";
    const prefix = posix ? text(at + 345, 155) : "";
    const name = prefix ? `${prefix}/${text(at, 100)}` : text(at, 100);
    const data = bytes.subarray(at + 512, at + 512 + size);
    at += 512 + Math.ceil(size / 512) * 512;

    if (type === "x") {
      longName = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(decoder.decode(data))?.[1];
    } else if (type === "L") {
      longName = decoder.decode(data).replace(/\0.*$/s, "");
    } else if (type !== "g") {
      entries.push({ name: longName ?? name, type, mode, data });
      longName = undefined;
    }
  }
  return entries;
}

/** Asserts that one line of `text` contains every fragment. */
export function assertLineWith(text: string, fragments: string[]): void {
  const found = text.split("\n").some((line) =>
    fragments.every((fragment) => line.includes(fragment))
  );
  assert.ok(
    found,
    `no line contains all of ${JSON.stringify(fragments)} in:\n${text}`,
  );
}

/** Reads a fixture file's text. */
export function readFixture(name: string): string {
  return Deno.readTextFileSync(join(FIXTURES, name));
}
