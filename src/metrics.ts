/**
 * `GET /metrics`: Squid's cache manager pages turned into Prometheus text
 * format on each scrape, plus the entrypoint's own figures. Scrapes share
 * one in-flight collection and reuse a result younger than a second, so a
 * busy scraper costs Squid at most a few manager requests per second.
 *
 * @module
 */

import { fetchManagerPage, managerRequestsMade } from "./cache_manager.ts";
import * as log from "./log.ts";

/** Prometheus text exposition format version 0.0.4. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** A scrape younger than this is served again instead of asking Squid. */
const REUSE_MS = 1000;

/** Figures the entrypoint keeps about itself. */
export interface EntrypointStats {
  startTimeSeconds: number;
  startupSeconds(): number | undefined;
  reloads(): number;
  reloadFailures(): number;
}

/** What the collector needs to know about the proxy. */
export interface MetricsSource {
  proxy: { hostname: string; port: number };
  cacheDiskConfiguredBytes: number;
  cacheMemConfiguredBytes: number;
  /**
   * The most certificate generator helpers Squid may run (the first value
   * of `sslcrtd_children`), or undefined without SSL-bump. Squid 6 has no
   * cache manager page for these helpers, so how many are busy is not
   * known.
   */
  certgenHelpersMax?: number;
  stats: EntrypointStats;
}

/** Collects and renders metrics; one per process. */
export class MetricsCollector {
  #source: MetricsSource;
  #last?: { at: number; text: string };
  #pending?: Promise<string>;
  /** The kind of failure last explained in the log, to say each once. */
  #hinted?: string;

  constructor(source: MetricsSource) {
    this.#source = source;
  }

  /** Returns the metrics text, collecting at most once per second. */
  render(): Promise<string> {
    if (this.#last && performance.now() - this.#last.at < REUSE_MS) {
      return Promise.resolve(this.#last.text);
    }
    this.#pending ??= this.#collect().finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  async #collect(): Promise<string> {
    // One page at a time, counters first: Squid counts a manager request
    // when it ends, so a finished "info" would show up in the counters.
    const { proxy } = this.#source;
    const counters = await fetchManagerPage(proxy, "counters");
    const info = await fetchManagerPage(proxy, "info");

    const out = new MetricsWriter();
    const failed = !info.ok ? info : !counters.ok ? counters : undefined;
    if (failed) this.#hint(failed);
    else this.#hinted = undefined;
    out.gauge(
      "squid_up",
      "Whether Squid's cache manager answered",
      failed ? 0 : 1,
    );
    if (info.ok && counters.ok) {
      writeSquidMetrics(out, info.text, counters.text, this.#source);
    }
    out.gauge(
      "squid_certgen_helpers_max",
      "Certificate generator helpers Squid may run (sslcrtd_children)",
      this.#source.certgenHelpersMax,
    );
    writeEntrypointMetrics(out, this.#source.stats);

    const text = out.toString();
    this.#last = { at: performance.now(), text };
    return text;
  }

  #hint(reply: { ok: false; reason: string; status?: number }): void {
    const kind = reply.status === undefined ? "unreachable" : `${reply.status}`;
    if (this.#hinted === kind) return;
    this.#hinted = kind;
    const fix = reply.status === 403
      ? 'add "http_access allow localhost manager" before the first ' +
        '"http_access deny" line of squid.conf'
      : "check that Squid is running and listening on that port";
    log.warn(
      `Cannot read Squid's cache manager for /metrics (${reply.reason}) at ` +
        `${this.#source.proxy.hostname}:${this.#source.proxy.port}; ` +
        `reporting squid_up 0: ${fix}`,
    );
  }
}

function writeSquidMetrics(
  out: MetricsWriter,
  info: string,
  counters: string,
  source: MetricsSource,
): void {
  const counter = (key: string) => {
    const match = new RegExp(`^${key.replaceAll(".", "\\.")} = ([\\d.]+)$`, "m")
      .exec(counters);
    return match ? Number(match[1]) : undefined;
  };
  const field = (label: string) => {
    const match = new RegExp(`^\\s*${label}:?\\s+([-\\d.]+)`, "m").exec(info);
    return match ? Number(match[1]) : undefined;
  };

  out.counter(
    "squid_client_http_requests_total",
    "Client HTTP requests received (including cache manager requests)",
    counter("client_http.requests"),
  );
  out.counter(
    "squid_client_http_hits_total",
    "Client HTTP requests answered from the cache",
    counter("client_http.hits"),
  );
  out.counter(
    "squid_client_http_errors_total",
    "Client HTTP requests that ended in an error",
    counter("client_http.errors"),
  );
  out.counter(
    "squid_client_http_received_bytes_total",
    "Bytes received from clients",
    kib(counter("client_http.kbytes_in")),
  );
  out.counter(
    "squid_client_http_sent_bytes_total",
    "Bytes sent to clients",
    kib(counter("client_http.kbytes_out")),
  );
  out.counter(
    "squid_server_sent_bytes_total",
    "Bytes sent to origin servers",
    kib(counter("server.all.kbytes_out")),
  );
  out.counter(
    "squid_server_received_bytes_total",
    "Bytes received from origin servers",
    kib(counter("server.all.kbytes_in")),
  );

  out.windowed(
    "squid_request_hit_ratio",
    "Share of requests answered from the cache",
    percentWindows(info, "Hits as % of all requests"),
  );
  out.windowed(
    "squid_byte_hit_ratio",
    "Share of bytes sent from the cache",
    percentWindows(info, "Hits as % of bytes sent"),
  );
  out.serviceTimes(info);

  out.gauge(
    "squid_cache_disk_used_bytes",
    "Bytes of cached objects on disk",
    kib(field("Storage Swap size")),
  );
  out.gauge(
    "squid_cache_disk_configured_bytes",
    "Sum of the cache_dir sizes",
    source.cacheDiskConfiguredBytes,
  );
  out.gauge(
    "squid_cache_memory_used_bytes",
    "Bytes of cached objects in memory",
    kib(field("Storage Mem size")),
  );
  out.gauge(
    "squid_cache_memory_configured_bytes",
    "The cache_mem setting",
    source.cacheMemConfiguredBytes,
  );
  out.gauge(
    "squid_store_entries",
    "Objects known to the store",
    Number(/^\s*(\d+) StoreEntries$/m.exec(info)?.[1]),
  );
  out.gauge(
    "squid_cache_disk_objects",
    "Objects stored on disk",
    Number(/^\s*(\d+) on-disk objects$/m.exec(info)?.[1]),
  );
  out.gauge(
    "squid_file_descriptors_used",
    "File descriptors in use",
    field("Number of file desc currently in use"),
  );
  out.gauge(
    "squid_file_descriptors_max",
    "File descriptors available to Squid",
    field("Maximum number of file descriptors"),
  );
  out.gauge(
    "squid_uptime_seconds",
    "Seconds since Squid started",
    field("UP Time"),
  );
}

function writeEntrypointMetrics(out: MetricsWriter, stats: EntrypointStats) {
  out.gauge(
    "cephaloproxy_start_time_seconds",
    "Unix time the entrypoint started",
    stats.startTimeSeconds,
  );
  out.gauge(
    "cephaloproxy_startup_duration_seconds",
    "Seconds from entrypoint start to Squid accepting connections",
    stats.startupSeconds(),
  );
  out.counter(
    "cephaloproxy_config_reloads_total",
    "Configuration reloads passed to Squid",
    stats.reloads(),
  );
  out.counter(
    "cephaloproxy_config_reload_failures_total",
    "Reloads refused because the new configuration was invalid",
    stats.reloadFailures(),
  );
  out.counter(
    "cephaloproxy_manager_requests_total",
    "Cache manager requests the entrypoint made (Squid counts them as client requests)",
    managerRequestsMade(),
  );
}

function percentWindows(info: string, label: string) {
  const match = new RegExp(
    `${label}:\\s+5min: (-?[\\d.]+)%, 60min: (-?[\\d.]+)%`,
  )
    .exec(info);
  if (!match) return undefined;
  return {
    "5min": Math.max(0, Number(match[1]) / 100),
    "60min": Math.max(0, Number(match[2]) / 100),
  };
}

function kib(value: number | undefined): number | undefined {
  return value === undefined ? undefined : value * 1024;
}

const SERVICE_TIMES: Record<string, string> = {
  "HTTP Requests (All)": "all",
  "Cache Misses": "miss",
  "Cache Hits": "hit",
  "Near Hits": "near_hit",
  "Not-Modified Replies": "not_modified",
  "DNS Lookups": "dns",
};

/** Accumulates exposition lines, one HELP and TYPE per family. */
class MetricsWriter {
  #lines: string[] = [];

  gauge(name: string, help: string, value: number | undefined): void {
    this.#family(name, help, "gauge", [["", value]]);
  }

  counter(name: string, help: string, value: number | undefined): void {
    this.#family(name, help, "counter", [["", value]]);
  }

  windowed(
    name: string,
    help: string,
    values: Record<string, number> | undefined,
  ): void {
    if (!values) return;
    this.#family(
      name,
      help,
      "gauge",
      Object.entries(values).map(([w, v]) => [`{window="${w}"}`, v]),
    );
  }

  serviceTimes(info: string): void {
    const samples: [string, number][] = [];
    for (const [label, kind] of Object.entries(SERVICE_TIMES)) {
      const escaped = label.replace(/[()]/g, "\\$&");
      const match = new RegExp(
        `^\\s*${escaped}:\\s+([\\d.]+)\\s+([\\d.]+)`,
        "m",
      )
        .exec(info);
      if (!match) continue;
      samples.push([`{kind="${kind}",window="5min"}`, Number(match[1])]);
      samples.push([`{kind="${kind}",window="60min"}`, Number(match[2])]);
    }
    this.#family(
      "squid_median_service_seconds",
      "Median service time by kind of request",
      "gauge",
      samples,
    );
  }

  #family(
    name: string,
    help: string,
    type: "gauge" | "counter",
    samples: [string, number | undefined][],
  ): void {
    const known = samples.filter(([, v]) =>
      v !== undefined && Number.isFinite(v)
    );
    if (known.length === 0) return;
    this.#lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of known) {
      this.#lines.push(`${name}${labels} ${value}`);
    }
  }

  toString(): string {
    return this.#lines.join("\n") + "\n";
  }
}
