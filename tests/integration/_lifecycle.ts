/**
 * Helpers for the lifecycle tests and the health benchmark, on top of the
 * shared harness.
 *
 * The image has no shell and no `ps` or `kill`, so processes are seen and
 * signalled from a sidecar: a Debian container with bash that joins the
 * proxy's PID namespace (`--pid container:NAME`), reads `/proc/PID/stat`
 * with bash builtins only (so the sidecar forks nothing that could show up
 * as a zombie itself) and sends signals with bash's `kill`. Its own bash
 * is left out of every listing.
 *
 * @module
 */

import { join } from "node:path";
import { type CertFiles, createServerCert } from "./_certs.ts";
import {
  docker,
  dockerOk,
  type Lab,
  LABEL,
  ORIGIN_HTTP_PORT,
  ORIGIN_HTTPS_PORT,
  type Proxy,
  publishedAddress,
  waitFor,
} from "./_harness.ts";

/** `127.0.0.1:PORT`, where Docker published the container's `port`. */
export { publishedAddress as hostAddress };

/** The sidecar image: Debian 13 minbase with bash and coreutils. */
export const SIDECAR_IMAGE = Deno.env.get("CEPHALOPROXY_SIDECAR_IMAGE") ||
  "cephaloproxy-base/debian:trixie-slim";

/** The name the streaming origin answers to on a lab's network. */
export const STREAM_ORIGIN_HOST = "stream.test";
/** The streaming origin's port inside its container. */
export const STREAM_ORIGIN_PORT = ORIGIN_HTTP_PORT;

const SIDECAR_TIMEOUT_MS = 30_000;
const POLL_STEP_MS = 100;

/** The streaming origin's HTTPS port, when it has a certificate. */
export const STREAM_ORIGIN_HTTPS_PORT = ORIGIN_HTTPS_PORT;

/** A running streaming origin (`tests/fixtures/integration/origin.ts`). */
export interface StreamOrigin {
  name: string;
  /** `http://127.0.0.1:PORT`, the origin reached past the proxy. */
  directUrl: string;
}

/** How to start the streaming origin. */
export interface StreamOriginOptions {
  /** Names it answers to besides {@linkcode STREAM_ORIGIN_HOST}. */
  hosts?: string[];
  /** Serve HTTPS too, with a certificate for every name from this CA. */
  ca?: CertFiles;
}

/**
 * Starts the streaming origin on the lab's network as
 * {@linkcode STREAM_ORIGIN_HOST} (and `options.hosts`) and waits until it
 * answers.
 */
export async function startStreamOrigin(
  lab: Lab,
  options: StreamOriginOptions = {},
): Promise<StreamOrigin> {
  const name = lab.containerName("stream-origin");
  const root = await lab.makeDir(name);
  const hosts = [STREAM_ORIGIN_HOST, ...(options.hosts ?? [])];
  if (options.ca) {
    await createServerCert(join(root, "tls"), options.ca, hosts);
  }
  const directUrl = await lab.runOrigin(name, { root, hosts });
  await waitFor(`origin ${name} to answer`, async () => {
    try {
      const response = await fetch(`${directUrl}/`);
      await response.body?.cancel();
      return response.status === 200;
    } catch (err) {
      // Connections reset until the server listens.
      if (err instanceof TypeError) return false;
      throw err;
    }
  });
  return { name, directUrl };
}

/** One process as `/proc/PID/stat` shows it. */
export interface ProcessInfo {
  pid: number;
  /** The executable name, cut by the kernel to 15 characters. */
  comm: string;
  /** `R`, `S`, `D`, `Z` (zombie), `T`... */
  state: string;
  ppid: number;
}

/** Parses one `/proc/PID/stat` line; `comm` may hold spaces and parens. */
export function parseStat(line: string): ProcessInfo {
  const open = line.indexOf("(");
  const close = line.lastIndexOf(")");
  if (open < 0 || close < open) {
    throw new SyntaxError(`Cannot parse /proc stat line "${line}"`);
  }
  const [state, ppid] = line.slice(close + 2).split(" ");
  return {
    pid: Number(line.slice(0, open).trim()),
    comm: line.slice(open + 1, close),
    state,
    ppid: Number(ppid),
  };
}

/** Lists the processes in `container`'s PID namespace, sidecar excluded. */
export async function listProcesses(
  lab: Lab,
  container: string,
): Promise<ProcessInfo[]> {
  // A process may exit between the glob and the read; skip it.
  const output = await runSidecar(lab, container, [
    'echo "$$"',
    "for stat in /proc/[0-9]*/stat; do",
    '  read -r line 2>/dev/null <"$stat" && printf "%s\\n" "$line"',
    "done",
    "true",
  ]);
  const [self, ...lines] = output.trim().split("\n");
  return lines.map(parseStat).filter((proc) => proc.pid !== Number(self));
}

/** The one process named `comm` whose parent is `ppid`, if any. */
export function findChild(
  processes: ProcessInfo[],
  comm: string,
  ppid: number,
): ProcessInfo | undefined {
  return processes.find((proc) => proc.comm === comm && proc.ppid === ppid);
}

/** The entrypoint (Deno, under tini) and Squid (its child). */
export async function findSquid(lab: Lab, container: string) {
  const processes = await listProcesses(lab, container);
  const tini = processes.find((proc) => proc.pid === 1);
  const deno = findChild(processes, "deno", 1);
  const squid = deno && findChild(processes, "squid", deno.pid);
  if (tini?.comm !== "tini" || !deno || !squid) {
    throw new Error(
      `Expected tini -> deno -> squid in ${container}: ` +
        JSON.stringify(processes),
    );
  }
  return { deno, squid, processes };
}

/**
 * Sends `signal` (a name such as `KILL`) to `pid` in `container`'s PID
 * namespace; returns the wall-clock time of the kill in ms since the epoch,
 * as the sidecar read it right after `kill` returned.
 */
export async function signalProcess(
  lab: Lab,
  container: string,
  pid: number,
  signal: "KILL" | "TERM" | "HUP",
): Promise<number> {
  const output = await runSidecar(lab, container, [
    `kill -s ${signal} ${pid} && echo "$EPOCHREALTIME"`,
  ]);
  return Number(output.trim()) * 1000;
}

/**
 * Runs a bash script in a sidecar sharing `container`'s PID namespace and
 * returns its stdout.
 *
 * @throws {Error} with its stderr when the script exits non-zero.
 */
export async function runSidecar(
  lab: Lab,
  container: string,
  lines: string[],
): Promise<string> {
  const name = lab.containerName("sidecar");
  const result = await docker([
    "run",
    "--rm",
    `--name=${name}`,
    `--label=${LABEL}`,
    `--pid=container:${container}`,
    "--network=none",
    SIDECAR_IMAGE,
    ...["bash", "-c", lines.join("\n")],
  ], { timeoutMs: SIDECAR_TIMEOUT_MS });
  if (result.code !== 0) {
    throw new Error(
      `Sidecar for ${container} failed (exit code ${result.code}): ` +
        result.stderr.trim(),
    );
  }
  return result.stdout;
}

/** The parts of `docker inspect` the lifecycle tests read. */
export interface ContainerState {
  status: string;
  exitCode: number;
  /** Docker's RFC 3339 times, nanoseconds included. */
  startedAt: string;
  finishedAt: string;
  restartCount: number;
}

/** Reads the container's state. */
export async function inspectState(name: string): Promise<ContainerState> {
  const text = await dockerOk([
    "inspect",
    "--format",
    '{"state":{{json .State}},"restarts":{{.RestartCount}}}',
    name,
  ]);
  const { state, restarts } = JSON.parse(text);
  return {
    status: state.Status,
    exitCode: state.ExitCode,
    startedAt: state.StartedAt,
    finishedAt: state.FinishedAt,
    restartCount: restarts,
  };
}

/** Milliseconds since the epoch of a Docker timestamp. */
export function parseDockerTime(text: string): number {
  const ms = Date.parse(text.replace(/(\.\d{3})\d*Z$/, "$1Z"));
  if (Number.isNaN(ms)) throw new SyntaxError(`Bad Docker time "${text}"`);
  return ms;
}

/** How a streamed curl transfer ended. */
export interface TransferResult {
  code: number;
  status: number;
  body: string;
  stderr: string;
  /** `performance.now()` when curl exited. */
  endedAt: number;
}

const STATUS_MARK = "\n--curl-status--";

/**
 * A curl GET through the proxy whose body is read as it arrives, so a
 * test can act while the transfer is under way. Killed if still running
 * when disposed.
 */
export class CurlTransfer implements AsyncDisposable {
  #child: Deno.ChildProcess;
  #firstBytes = Promise.withResolvers<void>();
  #result: Promise<TransferResult>;

  constructor(proxy: Proxy, url: string) {
    this.#child = new Deno.Command("curl", {
      args: [
        ...["--silent", "--show-error", "--no-buffer"],
        ...["--max-time", "60", "--proxy", proxy.proxyUrl],
        ...["--write-out", `${STATUS_MARK}%{http_code}`],
        url,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#result = this.#collect();
  }

  /** Resolves when the first body bytes arrive; rejects if none do. */
  firstBytes(): Promise<void> {
    return this.#firstBytes.promise;
  }

  /** Resolves when curl exits. */
  result(): Promise<TransferResult> {
    return this.#result;
  }

  async #collect(): Promise<TransferResult> {
    const decoder = new TextDecoder();
    const stderr = new Response(this.#child.stderr).text();
    let stdout = "";
    for await (const chunk of this.#child.stdout) {
      stdout += decoder.decode(chunk, { stream: true });
      if (stdout.length > 0) this.#firstBytes.resolve();
    }
    const status = await this.#child.status;
    const endedAt = performance.now();
    this.#firstBytes.reject(new Error("curl exited before any body bytes"));
    // Nobody may be waiting for the first bytes any more.
    this.#firstBytes.promise.catch(() => {});

    const at = stdout.lastIndexOf(STATUS_MARK);
    return {
      code: status.code,
      status: at < 0 ? 0 : Number(stdout.slice(at + STATUS_MARK.length)),
      body: at < 0 ? stdout : stdout.slice(0, at),
      stderr: await stderr,
      endedAt,
    };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch (err) {
      // kill() throws TypeError once curl has exited.
      if (!(err instanceof TypeError)) throw err;
    }
    await this.#result;
  }
}

/**
 * Sends `request` on a new TCP connection and reads until the server
 * closes it; a reset counts as a close.
 *
 * @throws {Error} when the server neither answers nor closes in time.
 */
export async function exchangeRaw(
  address: string,
  request: Uint8Array,
  timeoutMs = 5000,
): Promise<string> {
  const [hostname, port] = address.split(":");
  const conn = await Deno.connect({ hostname, port: Number(port) });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.close();
  }, timeoutMs);
  const received: Uint8Array[] = [];

  try {
    await conn.write(request);
    const buffer = new Uint8Array(4096);
    while (true) {
      const read = await conn.read(buffer).catch((err) => {
        if (err instanceof Deno.errors.ConnectionReset) return null;
        if (timedOut) {
          throw new Error(`No close from ${address} within ${timeoutMs} ms`);
        }
        throw err;
      });
      if (read === null) break;
      received.push(buffer.slice(0, read));
    }
  } finally {
    clearTimeout(timer);
    if (!timedOut) conn.close();
  }
  return new TextDecoder().decode(concat(received));
}

function concat(parts: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  return all;
}

/**
 * A slowloris client: opens a connection and sends a request line one
 * byte every `stepMs`, never finishing it, until disposed.
 */
export class SlowClient implements AsyncDisposable {
  #conn: Deno.TcpConn;
  #stopped = false;
  #closedByServer = false;
  #bytesSent = 0;
  #loop: Promise<void>;

  private constructor(conn: Deno.TcpConn, stepMs: number) {
    this.#conn = conn;
    this.#loop = this.#drip(stepMs);
  }

  /** Connects to `address` (`host:port`) and starts dripping. */
  static async open(address: string, stepMs = 50): Promise<SlowClient> {
    const [hostname, port] = address.split(":");
    const conn = await Deno.connect({ hostname, port: Number(port) });
    return new SlowClient(conn, stepMs);
  }

  /** Bytes written so far. */
  bytesSent(): number {
    return this.#bytesSent;
  }

  /** Whether the server has closed the connection. */
  closedByServer(): boolean {
    return this.#closedByServer;
  }

  async #drip(stepMs: number): Promise<void> {
    const head = new TextEncoder().encode("GET /health HTTP/1.1\r\nX-Slow: ");
    while (!this.#stopped) {
      const byte = this.#bytesSent < head.length
        ? head.subarray(this.#bytesSent, this.#bytesSent + 1)
        : new Uint8Array([0x61]);
      try {
        await this.#conn.write(byte);
      } catch (err) {
        if (
          !(err instanceof Deno.errors.BrokenPipe ||
            err instanceof Deno.errors.ConnectionReset)
        ) throw err;
        this.#closedByServer = true;
        return;
      }
      this.#bytesSent++;
      await new Promise((resolve) => setTimeout(resolve, stepMs));
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#stopped = true;
    await this.#loop;
    this.#conn.close();
  }
}

/** Percentile `p` (0 to 100) of `values`, nearest-rank. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/** Waits `ms` as a poll step or a pacing interval, never as a sync. */
export function pause(ms = POLL_STEP_MS): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
