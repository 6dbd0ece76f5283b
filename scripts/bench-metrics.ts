/**
 * What a Prometheus scraper costs the proxy: HTTP throughput through one
 * CephaloProxy container with `/metrics` scraped every second, against
 * the same container with no scraper, in alternating runs.
 *
 *     node_modules/.bin/deno run --allow-run --allow-net --allow-read \
 *       --allow-write --allow-env scripts/bench-metrics.ts
 *
 * The origin is a container of the image under test on the bench's own
 * Docker network, serving 100 KiB cacheable bodies; every request has a
 * new query string, so each one is a MISS that Squid fetches and stores
 * (in a cache on tmpfs); the timed runs start once the cache is full.
 * Clients are keep-alive connections from this process to the published
 * proxy port on 127.0.0.1. Prints a table and the throughput ratio, and
 * writes `bench-results/metrics.json`. Environment: `CEPHALOPROXY_IMAGE`,
 * `CEPHALOPROXY_DOCKER` (as for the integration tests), and
 * `BENCH_ROUNDS`, `BENCH_SECONDS`, `BENCH_CONNECTIONS` to change the
 * defaults (3 rounds of 5 s each way, 8 connections).
 *
 * @module
 */

import { join } from "node:path";
import {
  dockerOk,
  IMAGE,
  Lab,
  type Proxy,
  waitFor,
  waitForReady,
} from "../tests/integration/_harness.ts";
import { parseMetrics, valueOf } from "../tests/integration/_operability.ts";

const ORIGIN_HOST = "bench-origin.test";
const ORIGIN_PORT = 8000;
const BODY_BYTES = 100 * 1024;
const SCRAPE_INTERVAL_MS = 1000;
const FILL_TIMEOUT_MS = 180_000;
const RESULTS = "bench-results/metrics.json";

/** The origin, run by the image's own Deno with `deno eval`. */
const ORIGIN_CODE = `
const body = new Uint8Array(${BODY_BYTES}).fill(120);
Deno.serve({ hostname: "0.0.0.0", port: ${ORIGIN_PORT}, onListen() {} }, () =>
  new Response(body, {
    headers: {
      "content-type": "application/octet-stream",
      "cache-control": "public, max-age=600",
    },
  }));
`;

/** One timed run's figures. */
interface Run {
  round: number;
  scraper: boolean;
  seconds: number;
  requests: number;
  bytes: number;
  requestsPerSecond: number;
  mebibytesPerSecond: number;
  scrapes: number;
  scrapeMedianMs?: number;
  scrapeMaxMs?: number;
}

function readCount(name: string, fallback: number): number {
  const raw = Deno.env.get(name);
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`Invalid ${name}="${raw}": expected a whole number`);
  }
  return value;
}

const encoder = new TextEncoder();
const HEAD_END = encoder.encode("\r\n\r\n");

/** Reads HTTP/1.1 responses off one keep-alive connection. */
class ResponseReader {
  #conn: Deno.Conn;
  #buffer = new Uint8Array(256 * 1024);
  #start = 0;
  #end = 0;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Reads one response; returns its status, body size and keep-alive. */
  async read(): Promise<{ status: number; bytes: number; close: boolean }> {
    const head = await this.#readHead();
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1]);
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1];
    if (length === undefined) {
      throw new Error(`Response without Content-Length:\n${head}`);
    }
    await this.#skip(Number(length));
    const close = /\r\nconnection:\s*close/i.test(head);
    return { status, bytes: Number(length), close };
  }

  async #readHead(): Promise<string> {
    while (true) {
      const at = indexOf(this.#buffer, HEAD_END, this.#start, this.#end);
      if (at >= 0) {
        const head = new TextDecoder().decode(
          this.#buffer.subarray(this.#start, at),
        );
        this.#start = at + HEAD_END.length;
        return head;
      }
      await this.#fill();
    }
  }

  async #skip(count: number): Promise<void> {
    while (count > 0) {
      if (this.#start === this.#end) await this.#fill();
      const take = Math.min(count, this.#end - this.#start);
      this.#start += take;
      count -= take;
    }
  }

  async #fill(): Promise<void> {
    if (this.#start === this.#end) {
      this.#start = this.#end = 0;
    } else if (this.#end === this.#buffer.length) {
      if (this.#start === 0) throw new Error("Response head over 256 KiB");
      this.#buffer.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    const read = await this.#conn.read(this.#buffer.subarray(this.#end));
    if (read === null) throw new Error("The proxy closed the connection");
    this.#end += read;
  }
}

function indexOf(
  haystack: Uint8Array,
  needle: Uint8Array,
  from: number,
  to: number,
): number {
  outer: for (let i = from; i + needle.length <= to; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) {
    done += await conn.write(bytes.subarray(done));
  }
}

/** Counters shared by the clients of one run. */
interface Tally {
  requests: number;
  bytes: number;
  next: number;
}

/** One keep-alive client: GETs new URLs through the proxy until `until`. */
async function runClient(
  address: { hostname: string; port: number },
  until: number,
  tally: Tally,
): Promise<void> {
  while (performance.now() < until) {
    const conn = await Deno.connect(address);
    try {
      const reader = new ResponseReader(conn);
      while (performance.now() < until) {
        const url = `http://${ORIGIN_HOST}:${ORIGIN_PORT}/body?n=${tally
          .next++}`;
        await writeAll(
          conn,
          encoder.encode(
            `GET ${url} HTTP/1.1\r\nHost: ${ORIGIN_HOST}:${ORIGIN_PORT}\r\n` +
              "Accept: */*\r\n\r\n",
          ),
        );
        const reply = await reader.read();
        if (reply.status !== 200) {
          throw new Error(`GET ${url} answered ${reply.status}`);
        }
        tally.requests++;
        tally.bytes += reply.bytes;
        if (reply.close) break;
      }
    } finally {
      conn.close();
    }
  }
}

/** Scrapes `/metrics` every second until `until`; returns the latencies. */
async function runScraper(proxy: Proxy, until: number): Promise<number[]> {
  const latencies: number[] = [];
  while (performance.now() < until) {
    const started = performance.now();
    const response = await fetch(`${proxy.healthUrl}/metrics`);
    await response.text();
    if (response.status !== 200) {
      throw new Error(`/metrics answered ${response.status}`);
    }
    latencies.push(performance.now() - started);
    // Pacing, not synchronisation: a scraper asks once per interval.
    const wait = started + SCRAPE_INTERVAL_MS - performance.now();
    const left = until - performance.now();
    if (wait > 0 && left > wait) {
      await new Promise((resolve) => setTimeout(resolve, wait));
    } else if (wait > 0) break;
  }
  return latencies;
}

/** One timed run with `connections` clients, and a scraper if asked. */
async function timedRun(
  proxy: Proxy,
  options: { seconds: number; connections: number; scraper: boolean },
  tally: Tally,
): Promise<Omit<Run, "round">> {
  const address = proxyAddress(proxy);
  const before = { requests: tally.requests, bytes: tally.bytes };
  const started = performance.now();
  const until = started + options.seconds * 1000;

  const clients = Array.from(
    { length: options.connections },
    () => runClient(address, until, tally),
  );
  const scraping = options.scraper
    ? runScraper(proxy, until)
    : Promise.resolve([]);
  const [latencies] = await Promise.all([scraping, ...clients]);

  const seconds = (performance.now() - started) / 1000;
  const requests = tally.requests - before.requests;
  const bytes = tally.bytes - before.bytes;
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    scraper: options.scraper,
    seconds: round(seconds, 3),
    requests,
    bytes,
    requestsPerSecond: round(requests / seconds, 1),
    mebibytesPerSecond: round(bytes / seconds / 1024 / 1024, 2),
    scrapes: latencies.length,
    scrapeMedianMs: sorted.length
      ? round(sorted[Math.floor(sorted.length / 2)], 1)
      : undefined,
    scrapeMaxMs: sorted.length ? round(sorted.at(-1)!, 1) : undefined,
  };
}

function proxyAddress(proxy: Proxy): { hostname: string; port: number } {
  const url = new URL(proxy.proxyUrl);
  return { hostname: url.hostname, port: Number(url.port) };
}

/** Writes a line of the report to stdout. */
function print(line: string): void {
  Deno.stdout.writeSync(encoder.encode(line + "\n"));
}

function round(value: number, digits: number): number {
  return Number(value.toFixed(digits));
}

/** (max - min) / mean of a set of rates. */
function spread(values: number[]): number {
  return (Math.max(...values) - Math.min(...values)) / mean(values);
}

function percent(fraction: number): string {
  return `${(fraction * 100).toFixed(1)}%`;
}

function mean(values: number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

/**
 * Runs load until the disk cache is near Squid's low-water mark
 * (`cache_swap_low`, 90 %), so that every timed run evicts as much as it
 * stores: filling an empty cache is faster than running a full one, and
 * would favour whichever runs come first. Returns the seconds it took.
 */
async function fillCache(
  proxy: Proxy,
  connections: number,
  tally: Tally,
): Promise<number> {
  const started = performance.now();
  await waitFor("the cache to fill", async () => {
    await timedRun(proxy, { seconds: 1, connections, scraper: false }, tally);
    const response = await fetch(`${proxy.healthUrl}/metrics`);
    const metrics = parseMetrics(await response.text());
    return valueOf(metrics, "squid_cache_disk_used_bytes") >=
      0.85 * valueOf(metrics, "squid_cache_disk_configured_bytes");
  }, FILL_TIMEOUT_MS);
  return round((performance.now() - started) / 1000, 1);
}

async function startOrigin(lab: Lab): Promise<void> {
  const name = lab.containerName("bench-origin");
  await dockerOk([
    "run",
    "--detach",
    `--name=${name}`,
    "--label=cephaloproxy-test=1",
    `--network=${lab.network}`,
    `--network-alias=${ORIGIN_HOST}`,
    "--entrypoint=/usr/bin/deno",
    IMAGE,
    ...["eval", ORIGIN_CODE],
  ]);
}

async function main(): Promise<void> {
  const rounds = readCount("BENCH_ROUNDS", 3);
  const seconds = readCount("BENCH_SECONDS", 5);
  const connections = readCount("BENCH_CONNECTIONS", 8);

  await using lab = await Lab.create();
  await startOrigin(lab);
  // The cache on tmpfs: Squid still writes every object, but the host
  // disk's write-back, which throttled later runs, stays out of it.
  const proxy = await lab.startProxy({
    tmpfs: ["/var/spool/squid:uid=1000,gid=0,mode=0775,size=400m"],
  });
  await waitForReady(proxy);
  const tally: Tally = { requests: 0, bytes: 0, next: 0 };

  // Warm up until the origin answers through the proxy (Squid answers 503
  // until it listens), then until the cache is full.
  await waitFor("the origin to answer through the proxy", async () => {
    const until = performance.now() + 200;
    return await runClient(proxyAddress(proxy), until, tally).then(
      () => true,
      (err) => {
        if (!(err instanceof Error) || !/answered 50\d/.test(err.message)) {
          throw err;
        }
        return false;
      },
    );
  });
  const fillSeconds = await fillCache(proxy, connections, tally);
  print(`cache filled to 85% in ${fillSeconds} s`);

  // Alternate which side goes first, so a drift hits both alike.
  const runs: Run[] = [];
  for (let round = 1; round <= rounds; round++) {
    const order = round % 2 === 1 ? [false, true] : [true, false];
    for (const scraper of order) {
      const run = await timedRun(
        proxy,
        { seconds, connections, scraper },
        tally,
      );
      runs.push({ round, ...run });
      print(
        `round ${round} ${scraper ? "with scraper   " : "without scraper"} ` +
          `${run.requestsPerSecond.toFixed(1).padStart(7)} req/s ` +
          `${run.mebibytesPerSecond.toFixed(2).padStart(7)} MiB/s` +
          (scraper
            ? `  (${run.scrapes} scrapes, median ${run.scrapeMedianMs} ms, ` +
              `max ${run.scrapeMaxMs} ms)`
            : ""),
      );
    }
  }

  // The mean ratio, and each round's own ratio: the spread between runs
  // on one side tells how much of the ratio is noise.
  const rates = (scraper: boolean) =>
    runs.filter((run) => run.scraper === scraper)
      .map((run) => run.requestsPerSecond);
  const without = mean(rates(false));
  const withScraper = mean(rates(true));
  const roundRatios = rates(true).map((rate, i) =>
    round(rate / rates(false)[i], 4)
  );
  const summary = {
    withoutScraperRequestsPerSecond: round(without, 1),
    withScraperRequestsPerSecond: round(withScraper, 1),
    ratio: round(withScraper / without, 4),
    roundRatios,
    withoutScraperSpread: round(spread(rates(false)), 4),
    withScraperSpread: round(spread(rates(true)), 4),
  };
  print(
    `mean ${summary.withoutScraperRequestsPerSecond} req/s without, ` +
      `${summary.withScraperRequestsPerSecond} req/s with a scraper: ` +
      `ratio ${summary.ratio.toFixed(3)} (with / without)`,
  );
  print(
    `per-round ratios ${roundRatios.map((r) => r.toFixed(3)).join(", ")}; ` +
      `run-to-run spread ${percent(summary.withoutScraperSpread)} without, ` +
      `${percent(summary.withScraperSpread)} with`,
  );

  await Deno.mkdir("bench-results", { recursive: true });
  const report = {
    benchmark: "metrics-scraper-overhead",
    image: IMAGE,
    date: new Date().toISOString(),
    settings: {
      rounds,
      secondsPerRun: seconds,
      connections,
      bodyBytes: BODY_BYTES,
      scrapeIntervalMs: SCRAPE_INTERVAL_MS,
    },
    cacheFillSeconds: fillSeconds,
    runs,
    summary,
  };
  await Deno.writeTextFile(RESULTS, JSON.stringify(report, null, 2) + "\n");
  print(`wrote ${join(Deno.cwd(), RESULTS)}`);
}

if (import.meta.main) {
  await main();
}
