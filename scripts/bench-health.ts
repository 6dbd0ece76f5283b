/**
 * Health server latency under proxy load, and what the entrypoint costs in
 * proxy throughput, measured side by side in one run:
 *
 * 1. bare squid: the image's Squid binary started without the entrypoint
 *    (`--entrypoint /usr/sbin/squid IMAGE -N -f /bench.conf`);
 * 2. cephaloproxy: the image as shipped, with the same squid.conf mounted;
 *    1 and 2 are measured in alternating halves, bare, full, full, bare;
 * 3. cephaloproxy with `/health` load: as 2, while clients hammer
 *    `/health` (each of which makes the entrypoint open a TCP connection to
 *    Squid's port).
 *
 * The clients run on the same host as the containers, so on a machine
 * with few CPUs phase 3 measures CPU contention as much as anything.
 *
 * In each phase, clients fetch a body from an origin container through the
 * proxy, with a query string that differs per request so every one goes
 * to the origin. Traffic passes Docker's published ports on 127.0.0.1.
 * Prints a table and writes bench-results/health.json.
 *
 *     node_modules/.bin/deno run --allow-run --allow-net --allow-read \
 *       --allow-write --allow-env scripts/bench-health.ts \
 *       [--seconds 10] [--clients 16] [--health-clients 50] [--size 102400]
 *
 * The image is CEPHALOPROXY_IMAGE (default cephaloproxy:test); its
 * containers carry the test label `cephaloproxy-test=1` and are removed at
 * the end, also after Ctrl-C.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  dockerOk,
  IMAGE,
  Lab,
  type Proxy,
  waitFor,
  waitForReady,
} from "../tests/integration/_harness.ts";
import {
  hostAddress,
  percentile,
  startStreamOrigin,
  STREAM_ORIGIN_HOST,
  STREAM_ORIGIN_PORT,
} from "../tests/integration/_lifecycle.ts";

/** The squid.conf both proxies run: a plain forward proxy, no cache. */
const BENCH_CONF =
  `# squid.conf for scripts/bench-health.ts, the same for both runs.
http_port 3128
pid_filename none
visible_hostname cephaloproxy-bench
acl localnet src 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16
http_access allow localhost manager
http_access deny manager
http_access allow localnet
http_access allow localhost
http_access deny all
cache deny all
access_log stdio:/var/log/squid/access.log squid
cache_log /var/log/squid/cache.log
coredump_dir /var/cache/squid
`;

const RESULTS = new URL("../bench-results/health.json", import.meta.url);
/** Load before each measurement, so JIT and connection pools are warm. */
const WARM_UP_SECONDS = 2;
const MB = 1_000_000;

/** The bench's settings, from flags. */
interface Settings {
  seconds: number;
  clients: number;
  healthClients: number;
  size: number;
}

/** What the proxy clients achieved in one phase. */
interface ProxyStats {
  requests: number;
  bytes: number;
  errors: number;
  seconds: number;
  requestsPerSecond: number;
  megabytesPerSecond: number;
}

/** What the `/health` clients saw in one phase. */
interface HealthStats {
  requests: number;
  non200: number;
  /** The bodies of non-200 replies (their reasons), with counts. */
  non200Bodies: Record<string, number>;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

function readSettings(): Settings {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      seconds: { type: "string", default: "10" },
      clients: { type: "string", default: "16" },
      "health-clients": { type: "string", default: "50" },
      size: { type: "string", default: "102400" },
    },
    strict: true,
  });
  const settings = {
    seconds: Number(values.seconds),
    clients: Number(values.clients),
    healthClients: Number(values["health-clients"]),
    size: Number(values.size),
  };
  for (const [name, value] of Object.entries(settings)) {
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(
        `Invalid --${name}="${value}": expected a whole number above 0`,
      );
    }
  }
  return settings;
}

/** Writes one line to stdout; the bench's only output besides the file. */
function print(line = ""): void {
  Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
}

/** The URL of request `n`, unique so that nothing could be cached. */
function bodyUrl(size: number, n: number): string {
  return `http://${STREAM_ORIGIN_HOST}:${STREAM_ORIGIN_PORT}/bytes` +
    `?size=${size}&n=${n}-${crypto.randomUUID()}`;
}

/** Fetches one body through `client`; true when it came whole with 200. */
async function fetchBody(
  client: Deno.HttpClient,
  size: number,
  n: number,
): Promise<boolean> {
  try {
    const response = await fetch(bodyUrl(size, n), { client });
    const body = await response.arrayBuffer();
    return response.status === 200 && body.byteLength === size;
  } catch (err) {
    // fetch reports network failures as TypeError.
    if (!(err instanceof TypeError)) throw err;
    return false;
  }
}

/** Runs `clients` loops fetching through the proxy for `ms`. */
async function driveProxy(
  proxyUrl: string,
  settings: Settings,
  options: { ms: number; signal: AbortSignal },
): Promise<ProxyStats> {
  const client = Deno.createHttpClient({ proxy: { url: proxyUrl } });
  let requests = 0;
  let errors = 0;
  let next = 0;
  try {
    const started = performance.now();
    const deadline = started + options.ms;
    await Promise.all(
      Array.from({ length: settings.clients }, async () => {
        while (performance.now() < deadline && !options.signal.aborted) {
          if (await fetchBody(client, settings.size, next++)) requests++;
          else errors++;
        }
      }),
    );
    return proxyStats(requests, errors, performance.now() - started, settings);
  } finally {
    client.close();
  }
}

function proxyStats(
  requests: number,
  errors: number,
  ms: number,
  settings: Settings,
): ProxyStats {
  const seconds = ms / 1000;
  const bytes = requests * settings.size;
  return {
    requests,
    bytes,
    errors,
    seconds,
    requestsPerSecond: requests / seconds,
    megabytesPerSecond: bytes / MB / seconds,
  };
}

/** Adds up measurements of one proxy taken in slices. */
function sumStats(parts: ProxyStats[], settings: Settings): ProxyStats {
  const total = (key: "requests" | "errors" | "seconds") =>
    parts.reduce((sum, part) => sum + part[key], 0);
  return proxyStats(
    total("requests"),
    total("errors"),
    total("seconds") * 1000,
    settings,
  );
}

/** Runs `clients` loops of GET /health until `done` settles. */
async function hammerHealth(
  healthUrl: string,
  clients: number,
  done: Promise<unknown>,
): Promise<HealthStats> {
  let finished = false;
  done.finally(() => finished = true);
  const latencies: number[] = [];
  const non200Bodies: Record<string, number> = {};
  let non200 = 0;
  let errors = 0;

  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (!finished) {
        const started = performance.now();
        try {
          const response = await fetch(`${healthUrl}/health`);
          const body = await response.text();
          latencies.push(performance.now() - started);
          if (response.status !== 200) {
            non200++;
            const reason = `${response.status} ${body.trim()}`;
            non200Bodies[reason] = (non200Bodies[reason] ?? 0) + 1;
          }
        } catch (err) {
          if (!(err instanceof TypeError)) throw err;
          errors++;
        }
      }
    }),
  );
  return {
    requests: latencies.length,
    non200,
    non200Bodies,
    errors,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies.reduce((max, ms) => Math.max(max, ms), 0),
  };
}

/** Starts the image's Squid without the entrypoint, ready to proxy. */
async function startBareSquid(
  lab: Lab,
  confPath: string,
): Promise<{ name: string; proxyUrl: string }> {
  const name = lab.containerName("bare-squid");
  await dockerOk([
    "run",
    "--detach",
    `--name=${name}`,
    "--label=cephaloproxy-test=1",
    `--network=${lab.network}`,
    "--publish=127.0.0.1::3128",
    `--volume=${confPath}:/bench.conf:ro`,
    "--entrypoint=/usr/sbin/squid",
    IMAGE,
    ...["-N", "-f", "/bench.conf"],
  ]);
  const proxyUrl = `http://${await hostAddress(name, 3128)}`;
  const client = Deno.createHttpClient({ proxy: { url: proxyUrl } });
  try {
    await waitFor(`bare Squid ${name} to proxy`, () => {
      return fetchBody(client, 1, 0);
    });
  } finally {
    client.close();
  }
  return { name, proxyUrl };
}

async function main(): Promise<void> {
  const settings = readSettings();
  const stop = new AbortController();
  const onInterrupt = () => stop.abort();
  Deno.addSignalListener("SIGINT", onInterrupt);

  try {
    await using lab = await Lab.create();
    await startStreamOrigin(lab);
    const confPath = await lab.writeFile("bench.conf", BENCH_CONF);
    print(
      `CephaloProxy health benchmark: ${IMAGE}, ${settings.seconds} s per ` +
        `phase, ${settings.clients} proxy clients, ${settings.size} byte ` +
        `bodies, ${settings.healthClients} /health clients`,
    );

    // Both proxies run side by side, each warmed up, then measured in
    // alternating halves (bare, full, full, bare) so that drift on the
    // host weighs on both alike.
    const bareSquid = await startBareSquid(lab, confPath);
    const proxy: Proxy = await lab.startProxy({ squidConf: BENCH_CONF });
    await waitForReady(proxy);
    const half = { ms: settings.seconds * 500, signal: stop.signal };
    const warmUp = { ms: WARM_UP_SECONDS * 1000, signal: stop.signal };
    const bareParts: ProxyStats[] = [];
    const fullParts: ProxyStats[] = [];
    await driveProxy(bareSquid.proxyUrl, settings, warmUp);
    await driveProxy(proxy.proxyUrl, settings, warmUp);
    bareParts.push(await driveProxy(bareSquid.proxyUrl, settings, half));
    fullParts.push(await driveProxy(proxy.proxyUrl, settings, half));
    fullParts.push(await driveProxy(proxy.proxyUrl, settings, half));
    bareParts.push(await driveProxy(bareSquid.proxyUrl, settings, half));
    const bare = sumStats(bareParts, settings);
    const full = sumStats(fullParts, settings);
    await dockerOk(["rm", "--force", bareSquid.name]);

    // The full container again, while clients hammer /health.
    const loading = driveProxy(proxy.proxyUrl, settings, {
      ms: settings.seconds * 1000,
      signal: stop.signal,
    });
    const health = await hammerHealth(
      proxy.healthUrl,
      settings.healthClients,
      loading,
    );
    const loaded = await loading;

    report(settings, { bare, full, loaded, health });
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}

function report(
  settings: Settings,
  results: {
    bare: ProxyStats;
    full: ProxyStats;
    loaded: ProxyStats;
    health: HealthStats;
  },
): void {
  const { bare, full, loaded, health } = results;
  const rows: [string, ProxyStats][] = [
    ["bare squid (no entrypoint)", bare],
    ["cephaloproxy", full],
    ["cephaloproxy + /health load", loaded],
  ];
  print();
  print(
    "proxy phase".padEnd(30) + "requests/s".padStart(12) +
      "MB/s".padStart(10) + "errors".padStart(8),
  );
  for (const [name, stats] of rows) {
    print(
      name.padEnd(30) + stats.requestsPerSecond.toFixed(1).padStart(12) +
        stats.megabytesPerSecond.toFixed(1).padStart(10) +
        String(stats.errors).padStart(8),
    );
  }
  print();
  print(
    `/health under proxy load: ${health.requests} requests, p50 ` +
      `${health.p50Ms.toFixed(2)} ms, p99 ${health.p99Ms.toFixed(2)} ms, ` +
      `max ${health.maxMs.toFixed(2)} ms, non-200 ${health.non200}, ` +
      `errors ${health.errors}`,
  );
  for (const [reason, count] of Object.entries(health.non200Bodies)) {
    print(`  ${count} x ${reason}`);
  }
  const ratio = full.requestsPerSecond / bare.requestsPerSecond;
  const loadedRatio = loaded.requestsPerSecond / bare.requestsPerSecond;
  print(
    `throughput ratio cephaloproxy / bare squid: ${ratio.toFixed(2)} ` +
      `(${loadedRatio.toFixed(2)} with /health load)`,
  );

  Deno.mkdirSync(new URL(".", RESULTS), { recursive: true });
  Deno.writeTextFileSync(
    RESULTS,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        image: IMAGE,
        settings,
        proxy: { bareSquid: bare, cephaloproxy: full, withHealthLoad: loaded },
        health,
        ratio: { cephaloproxy: ratio, withHealthLoad: loadedRatio },
      },
      null,
      2,
    ) + "\n",
  );
  print(`written to ${RESULTS.pathname}`);
}

if (import.meta.main) await main();
