/**
 * Helpers for the operability tests, on top of `_harness.ts`: a strict
 * parser for the Prometheus text that `/metrics` serves, scrapes, Docker
 * named volumes removed when the test ends, waits on `docker logs`, and
 * Squid's native access-log format.
 *
 * @module
 */

import {
  docker,
  dockerOk,
  LABEL,
  type Proxy,
  publishedAddress,
  readContainerFile,
  waitFor,
} from "./_harness.ts";

/** One sample line: `name{labels} value`. */
export interface Sample {
  labels: Record<string, string>;
  value: number;
}

/** A metric family: its `# HELP`, `# TYPE` and samples, in text order. */
export interface Family {
  name: string;
  help: string;
  type: "counter" | "gauge";
  samples: Sample[];
}

/** Families by name, in the order the text declares them. */
export type Metrics = Map<string, Family>;

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/;
const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

/**
 * Parses Prometheus text format 0.0.4 as the entrypoint writes it, more
 * strictly than the format requires: no blank lines, no free comments, no
 * timestamps; each family declares exactly one `# HELP` and one `# TYPE`
 * before its samples, which follow together; types are `counter` or
 * `gauge`; counters end in `_total` and never go below zero; every value
 * is a finite number; no family is empty and no label set repeats.
 *
 * @throws {SyntaxError} naming the line and what is wrong with it.
 */
export function parseMetrics(text: string): Metrics {
  if (!text.endsWith("\n")) {
    throw new SyntaxError("Metrics text does not end with a newline");
  }
  const families: Metrics = new Map();
  let current: Partial<Family> & { name: string } | undefined;
  const lines = text.slice(0, -1).split("\n");

  lines.forEach((line, index) => {
    const fail = (reason: string): never => {
      throw new SyntaxError(`Metrics line ${index + 1} ${reason}: ${line}`);
    };

    // Metadata: HELP opens a family, TYPE completes it.
    const meta = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
    if (meta) {
      const [, kind, name, rest = ""] = meta;
      if (!NAME.test(name)) fail("has an invalid metric name");
      if (current?.name !== name) {
        if (current && !current.samples?.length) {
          fail("follows an empty family");
        }
        if (families.has(name)) fail("declares a family a second time");
        current = { name, samples: [] };
      } else if (current.samples?.length) {
        fail("comes after the family's samples");
      }
      if (kind === "HELP") {
        if (current.help !== undefined) fail("repeats # HELP");
        if (rest.trim() === "") fail("has an empty # HELP");
        current.help = rest;
        return;
      }
      if (current.type !== undefined) fail("repeats # TYPE");
      if (rest !== "counter" && rest !== "gauge") {
        fail("has a TYPE other than counter or gauge");
      }
      if (rest === "counter" && !name.endsWith("_total")) {
        fail("declares a counter whose name does not end in _total");
      }
      current.type = rest as Family["type"];
      return;
    }
    if (line.startsWith("#")) fail("is a comment other than # HELP or # TYPE");

    // A sample of the current family.
    const sample = SAMPLE.exec(line);
    if (!sample) fail("is not `name{labels} value`");
    const [, name, labelText, valueText] = sample!;
    if (!current || current.name !== name) {
      fail("is a sample outside its family's # HELP and # TYPE");
    }
    if (current!.help === undefined || current!.type === undefined) {
      fail("comes before the family has both # HELP and # TYPE");
    }
    if (!NUMBER.test(valueText)) fail("has a value that is not a number");
    const value = Number(valueText);
    if (!Number.isFinite(value)) fail("has a value that is not finite");
    if (current!.type === "counter" && value < 0) {
      fail("has a negative counter");
    }
    const labels = labelText ? parseLabels(labelText, fail) : {};
    const key = JSON.stringify(Object.entries(labels).sort());
    const seen = current!.samples!.some((other) =>
      JSON.stringify(Object.entries(other.labels).sort()) === key
    );
    if (seen) fail("repeats a label set");
    current!.samples!.push({ labels, value });
    families.set(name, current as Family);
  });

  if (current && !current.samples?.length) {
    throw new SyntaxError(`Metrics family ${current.name} has no samples`);
  }
  return families;
}

function parseLabels(
  text: string,
  fail: (reason: string) => never,
): Record<string, string> {
  const labels: Record<string, string> = {};
  const pair = /([^=,{}]+)="((?:[^"\\]|\\["\\n])*)"(,|\})/y;
  pair.lastIndex = 1;
  while (pair.lastIndex < text.length) {
    const match = pair.exec(text);
    if (!match) fail("has malformed labels");
    const [, name, value, end] = match!;
    if (!LABEL_NAME.test(name)) fail("has an invalid label name");
    if (name in labels) fail("repeats a label");
    labels[name] = value.replace(/\\(.)/g, (_, c) => c === "n" ? "\n" : c);
    if (end === "}" && pair.lastIndex !== text.length) {
      fail("has text after its labels");
    }
  }
  return labels;
}

/**
 * The value of the sample with exactly these labels.
 *
 * @throws {Error} naming the metric when it is absent.
 */
export function valueOf(
  metrics: Metrics,
  name: string,
  labels: Record<string, string> = {},
): number {
  const key = JSON.stringify(Object.entries(labels).sort());
  const sample = metrics.get(name)?.samples.find((candidate) =>
    JSON.stringify(Object.entries(candidate.labels).sort()) === key
  );
  if (!sample) {
    throw new Error(`No sample ${name}${JSON.stringify(labels)} in /metrics`);
  }
  return sample.value;
}

/** One `GET /metrics`, read whole. */
export interface Scrape {
  status: number;
  contentType: string | null;
  text: string;
}

/** GETs `/metrics` from the proxy container's health server. */
export async function scrape(proxy: Proxy): Promise<Scrape> {
  const response = await fetch(`${proxy.healthUrl}/metrics`);
  return {
    status: response.status,
    contentType: response.headers.get("content-type"),
    text: await response.text(),
  };
}

/** The entrypoint's count of its own cache manager requests. */
export const MANAGER_REQUESTS = "cephaloproxy_manager_requests_total";

/**
 * Scrapes until the entrypoint has asked Squid again since `previous`
 * (its manager request count rose), so the text is a new collection and
 * not the one reused for a second. Polls; never sleeps a fixed time.
 */
export async function scrapeFresh(
  proxy: Proxy,
  previous: Metrics,
): Promise<Metrics> {
  const before = valueOf(previous, MANAGER_REQUESTS);
  return await waitFor(`${proxy.name} /metrics to collect again`, async () => {
    const reply = await scrape(proxy);
    if (reply.status !== 200) return undefined;
    const metrics = parseMetrics(reply.text);
    return valueOf(metrics, MANAGER_REQUESTS) > before ? metrics : undefined;
  }, 10_000);
}

/** Named Docker volumes for one test, removed (with their data) at the end. */
export class Volumes implements AsyncDisposable {
  readonly #prefix = `cpt-${crypto.randomUUID().slice(0, 8)}`;
  readonly #names: string[] = [];

  /** Creates an empty named volume; Docker seeds it from the image. */
  async create(role: string): Promise<string> {
    const name = `${this.#prefix}-${role}`;
    await dockerOk(["volume", "create", `--label=${LABEL}`, name]);
    this.#names.push(name);
    return name;
  }

  /**
   * Removes the volumes. Declare this before the `Lab` that uses them, so
   * that `await using` removes the lab's containers first.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#names.length === 0) return;
    const result = await docker(["volume", "rm", "--force", ...this.#names]);
    if (result.code !== 0) {
      throw new Error(`Cannot remove volumes: ${result.stderr.trim()}`);
    }
  }
}

/**
 * The proxy's addresses as published now; Docker picks new host ports
 * when a stopped container is started again.
 */
export async function publishedProxy(name: string): Promise<Proxy> {
  return {
    name,
    proxyUrl: `http://${await publishedAddress(name, 3128)}`,
    healthUrl: `http://${await publishedAddress(name, 8080)}`,
  };
}

/** Which stream of `docker logs` to read. */
export type Stream = "stdout" | "stderr";

/**
 * Polls `docker logs` until `stream` has a line matching `pattern`;
 * returns that line.
 */
export async function waitForLogLine(
  name: string,
  stream: Stream,
  pattern: RegExp,
  timeoutMs = 10_000,
): Promise<string> {
  return await waitFor(`${name} ${stream} to match ${pattern}`, async () => {
    const result = await docker(["logs", name]);
    if (result.code !== 0) throw new Error(result.stderr.trim());
    return result[stream].split("\n").find((line) => pattern.test(line));
  }, timeoutMs);
}

/** One line of Squid's native access log format. */
export interface AccessEntry {
  /** The result code, e.g. `TCP_MISS` or `TCP_MEM_HIT`. */
  result: string;
  status: number;
  method: string;
  url: string;
}

/** Parses the lines of a `squid`-format access log; skips other lines. */
export function parseAccessLog(text: string): AccessEntry[] {
  const entries: AccessEntry[] = [];
  for (const line of text.split("\n")) {
    // time elapsed client result/status bytes method URL user hierarchy type
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10 || !/^\d+\.\d+$/.test(fields[0])) continue;
    const [result, status] = fields[3].split("/");
    entries.push({
      result,
      status: Number(status),
      method: fields[5],
      url: fields[6],
    });
  }
  return entries;
}

/** Squid's access log file in the image. */
export const ACCESS_LOG = "/var/log/squid/access.log";

/** Polls the container's access.log file until `url` has an entry. */
export async function waitForAccessEntry(
  name: string,
  url: string,
  count = 1,
): Promise<AccessEntry[]> {
  return await waitFor(`${name} ${ACCESS_LOG} to log ${url}`, async () => {
    const text = await readContainerFile(name, ACCESS_LOG);
    const entries = parseAccessLog(text).filter((entry) => entry.url === url);
    return entries.length >= count ? entries : undefined;
  }, 10_000);
}

/** Scrapes `/metrics` as soon as the health port answers, and returns it. */
export async function scrapeWhenListening(proxy: Proxy): Promise<Scrape> {
  return await waitFor(`${proxy.name} health port to answer`, async () => {
    try {
      return await scrape(proxy);
    } catch (err) {
      // The published port resets connections until the server listens.
      if (err instanceof TypeError) return undefined;
      throw err;
    }
  });
}
