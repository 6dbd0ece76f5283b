/**
 * The health endpoints, with the legacy image's bodies and status codes:
 * `/health` (liveness) answers `OK` while Squid runs and its port accepts
 * a connection; `/ready` (readiness) answers `READY` when Squid runs and
 * accepts, the cache directories take a write, the config can be read and
 * no shutdown is under way. Failed checks are listed one per line with
 * status 503. Other paths get 404.
 *
 * @module
 */

import { isReadOnlyError } from "./_fs.ts";
import { METRICS_CONTENT_TYPE } from "./metrics.ts";

/** What the handler asks about the proxy; supplied by `main.ts`. */
export interface HealthChecks {
  /** Undefined while Squid runs, otherwise why it does not. */
  squidProblem(): string | undefined;
  /** True from the first moment of a shutdown. */
  draining(): boolean;
  /** Where the proxy listens, probed with a TCP connect. */
  proxy: { hostname: string; port: number };
  cacheDirs: string[];
  configPath: string;
  /** Renders `/metrics`; absent, the path answers 404. */
  metrics?: () => Promise<string>;
}

/** How long a TCP connect to the proxy may take before it counts as down. */
export const PROXY_CONNECT_TIMEOUT_MS = 1000;

const TEXT = { "content-type": "text/plain" };

/** Builds the request handler; it never touches the server socket. */
export function createHealthHandler(
  checks: HealthChecks,
): (request: Request) => Promise<Response> {
  const accepts = sharedAcceptCheck(checks.proxy);
  return async function handleHealthRequest(request) {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return reply(405, "Method not allowed; use GET or HEAD\n", {
        allow: "GET, HEAD",
      });
    }

    const path = new URL(request.url).pathname;
    if (path === "/health") {
      const problems = await livenessProblems(checks, accepts);
      return problems.length === 0
        ? reply(200, "OK\n")
        : reply(503, problems.join("\n") + "\n");
    }
    if (path === "/ready") {
      const problems = await readinessProblems(checks, accepts);
      return problems.length === 0
        ? reply(200, "READY\n")
        : reply(503, problems.join("\n") + "\n");
    }
    if (path === "/metrics" && checks.metrics) {
      return reply(200, await checks.metrics(), {
        "content-type": METRICS_CONTENT_TYPE,
      });
    }
    return reply(404, "Not found; endpoints are /health and /ready\n");
  };
}

async function livenessProblems(
  checks: HealthChecks,
  accepts: () => Promise<boolean>,
): Promise<string[]> {
  const squid = checks.squidProblem();
  if (squid) return [squid];
  // Squid closes its port when it starts to drain; that is not a failure.
  if (checks.draining()) return [];
  return await accepts() ? [] : [notAccepting(checks)];
}

async function readinessProblems(
  checks: HealthChecks,
  accepts: () => Promise<boolean>,
): Promise<string[]> {
  const problems: string[] = [];
  if (checks.draining()) {
    problems.push("Shutting down: not taking new requests");
  }

  const squid = checks.squidProblem();
  if (squid) problems.push(squid);
  else if (!await accepts()) {
    problems.push(notAccepting(checks));
  }

  for (const dir of checks.cacheDirs) {
    if (!takesWrite(dir)) problems.push(`Cache directory not writable: ${dir}`);
  }
  if (!readable(checks.configPath)) {
    problems.push(`Configuration not readable: ${checks.configPath}`);
  }
  return problems;
}

function notAccepting(checks: HealthChecks): string {
  const { hostname, port } = checks.proxy;
  return `Squid is not accepting connections on ${hostname}:${port}`;
}

/** A connect check younger than this answers concurrent requests. */
const ACCEPT_CHECK_REUSE_MS = 1000;

/**
 * Returns a check of whether the proxy accepts connections that connects
 * at most once at a time, and at most once a second while Squid accepts,
 * however many clients ask: each check is a real connection Squid must
 * accept, and under load a flood of them fills its accept queue. A failed
 * check is not reused once it has finished, so readiness turns 200 as soon
 * as Squid listens.
 */
function sharedAcceptCheck(
  address: { hostname: string; port: number },
): () => Promise<boolean> {
  let last: { at: number; result: Promise<boolean> } | undefined;
  let lastSucceeded = false;
  let pending = false;
  return () => {
    const now = performance.now();
    const fresh = last && (pending ||
      (lastSucceeded && now - last.at < ACCEPT_CHECK_REUSE_MS));
    if (!fresh) {
      pending = true;
      const result = proxyAccepts(address).then((ok) => {
        lastSucceeded = ok;
        return ok;
      }).finally(() => pending = false);
      last = { at: now, result };
    }
    return last!.result;
  };
}

/** Whether a TCP connection to the proxy opens within the timeout. */
export async function proxyAccepts(
  address: { hostname: string; port: number },
): Promise<boolean> {
  const connecting = Deno.connect({ ...address, transport: "tcp" });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), PROXY_CONNECT_TIMEOUT_MS);
  });

  try {
    const winner = await Promise.race([connecting, timeout]);
    if (winner === "timeout") {
      connecting.then((conn) => conn.close(), () => {});
      return false;
    }
    winner.close();
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.ConnectionRefused) return false;
    if (err instanceof Deno.errors.ConnectionReset) return false;
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

function takesWrite(dir: string): boolean {
  const probe = `${dir}/.cephaloproxy-ready-${Deno.pid}`;
  try {
    Deno.writeFileSync(probe, new Uint8Array());
    Deno.removeSync(probe);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.PermissionDenied) return false;
    if (err instanceof Deno.errors.NotFound) return false;
    if (err instanceof Deno.errors.NotADirectory) return false;
    if (isReadOnlyError(err)) return false;
    throw err;
  }
}

function readable(path: string): boolean {
  try {
    Deno.openSync(path).close();
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.PermissionDenied) return false;
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

function reply(
  status: number,
  body: string,
  headers: Record<string, string> = {},
): Response {
  // Deno.serve drops the body of a HEAD reply itself and keeps the
  // Content-Length of the GET, as HTTP asks.
  return new Response(body, { status, headers: { ...TEXT, ...headers } });
}
