/**
 * Operability: `/metrics` on the health port, the optional stdout access
 * log, and restart safety (stale PID file, half-made cache, one container
 * per cache volume), each against the real container.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  allLogs,
  containerLogs,
  containerState,
  curlViaProxy,
  dockerOk,
  ENGINE,
  getHealth,
  Lab,
  type Mount,
  originCount,
  readContainerFile,
  readFixture,
  SANITIZED,
  waitForExit,
  waitForReady,
} from "./_harness.ts";
import {
  MANAGER_REQUESTS,
  parseAccessLog,
  parseMetrics,
  publishedProxy,
  scrape,
  scrapeFresh,
  scrapeWhenListening,
  valueOf,
  Volumes,
  waitForAccessEntry,
  waitForLogLine,
} from "./_operability.ts";

const MIB = 1024 * 1024;
const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
const REQUESTS = "squid_client_http_requests_total";
const HITS = "squid_client_http_hits_total";
/** The `cache_dir` line of the default config: 16 L1 dirs of 256 L2 dirs. */
const CACHE_L1 = 16;
const CACHE_L2 = 256;

const REQUIRED_FAMILIES = [
  "squid_up",
  "squid_client_http_requests_total",
  "squid_client_http_hits_total",
  "squid_client_http_errors_total",
  "squid_client_http_received_bytes_total",
  "squid_client_http_sent_bytes_total",
  "squid_request_hit_ratio",
  "squid_byte_hit_ratio",
  "squid_median_service_seconds",
  "squid_cache_disk_used_bytes",
  "squid_cache_disk_configured_bytes",
  "squid_cache_memory_used_bytes",
  "squid_cache_memory_configured_bytes",
  "squid_store_entries",
  "squid_cache_disk_objects",
  "squid_file_descriptors_used",
  "squid_file_descriptors_max",
  "squid_uptime_seconds",
  "cephaloproxy_start_time_seconds",
  "cephaloproxy_startup_duration_seconds",
  "cephaloproxy_config_reloads_total",
  "cephaloproxy_config_reload_failures_total",
];

/** A URL on the lab origin; the origin marks every answer cacheable. */
function originUrl(path: string): string {
  return `http://allowed.test:8000${path}`;
}

/** Two-digit upper-case hex, as Squid names its cache subdirectories. */
function hex(n: number): string {
  return n.toString(16).toUpperCase().padStart(2, "0");
}

Deno.test(
  "parseMetrics() accepts good exposition text and rejects each broken rule",
  SANITIZED,
  async (t) => {
    const good = "# HELP a_total A.\n# TYPE a_total counter\na_total 3\n" +
      '# HELP b B.\n# TYPE b gauge\nb{w="5min"} 0.5\nb{w="60min"} 1e-3\n';
    const metrics = parseMetrics(good);
    assert.equal(valueOf(metrics, "a_total"), 3);
    assert.equal(valueOf(metrics, "b", { w: "60min" }), 0.001);

    const broken: [string, string][] = [
      ["no final newline", good.slice(0, -1)],
      ["a sample before its TYPE", "# HELP b B.\nb 1\n# TYPE b gauge\n"],
      ["no HELP", "# TYPE b gauge\nb 1\n"],
      ["two HELP lines", "# HELP b B.\n# HELP b B.\n# TYPE b gauge\nb 1\n"],
      ["an untyped family", "# HELP b B.\n# TYPE b untyped\nb 1\n"],
      ["a counter not named _total", "# HELP c C.\n# TYPE c counter\nc 1\n"],
      ["NaN", "# HELP b B.\n# TYPE b gauge\nb NaN\n"],
      ["+Inf", "# HELP b B.\n# TYPE b gauge\nb +Inf\n"],
      ["a timestamp", "# HELP b B.\n# TYPE b gauge\nb 1 1700000000\n"],
      ["a family declared twice", good + "# HELP b B.\n# TYPE b gauge\n"],
      ["a family with no samples", "# HELP b B.\n# TYPE b gauge\n"],
      ["a repeated label set", "# HELP b B.\n# TYPE b gauge\nb 1\nb 2\n"],
      ["bad labels", '# HELP b B.\n# TYPE b gauge\nb{w=5min"} 1\n'],
      ["a blank line", "# HELP b B.\n# TYPE b gauge\n\nb 1\n"],
      ["a free comment", "# note\n# HELP b B.\n# TYPE b gauge\nb 1\n"],
    ];
    for (const [name, text] of broken) {
      await t.step(`rejects ${name}`, () => {
        assert.throws(() => parseMetrics(text), SyntaxError);
      });
    }
  },
);

Deno.test(
  "GET /metrics answers strict Prometheus text with every required family",
  SANITIZED,
  async (t) => {
    await using lab = await Lab.create();
    const proxy = await lab.startProxy();
    await waitForReady(proxy);
    // The startup duration is known once the entrypoint's own poll (every
    // 50 ms) sees Squid accept, which can come just after /ready does.
    await waitForLogLine(
      proxy.name,
      "stdout",
      /Squid is accepting connections/,
    );
    const reply = await scrape(proxy);

    await t.step("status 200 and the exact 0.0.4 content type", () => {
      assert.equal(reply.status, 200);
      assert.equal(reply.contentType, CONTENT_TYPE);
    });

    const metrics = parseMetrics(reply.text);
    await t.step("every required family is present", () => {
      const missing = REQUIRED_FAMILIES.filter((name) => !metrics.has(name));
      assert.deepEqual(missing, [], reply.text);
      assert.equal(valueOf(metrics, "squid_up"), 1);
    });

    await t.step("configured sizes are the default config's", () => {
      assert.equal(
        valueOf(metrics, "squid_cache_disk_configured_bytes"),
        250 * MIB,
      );
      assert.equal(
        valueOf(metrics, "squid_cache_memory_configured_bytes"),
        64 * MIB,
      );
    });

    await t.step("values are plausible", () => {
      for (const window of ["5min", "60min"]) {
        for (
          const name of ["squid_request_hit_ratio", "squid_byte_hit_ratio"]
        ) {
          const ratio = valueOf(metrics, name, { window });
          assert.ok(ratio >= 0 && ratio <= 1, `${name} ${ratio}`);
        }
      }
      const used = valueOf(metrics, "squid_file_descriptors_used");
      assert.ok(used > 0, `${used} descriptors used`);
      assert.ok(used <= valueOf(metrics, "squid_file_descriptors_max"));
      const started = valueOf(metrics, "cephaloproxy_start_time_seconds");
      assert.ok(Math.abs(Date.now() / 1000 - started) < 120, `${started}`);
      const startup = valueOf(metrics, "cephaloproxy_startup_duration_seconds");
      assert.ok(startup > 0 && startup < 30, `startup ${startup} s`);
      assert.equal(valueOf(metrics, "cephaloproxy_config_reloads_total"), 0);
      assert.ok(valueOf(metrics, "squid_uptime_seconds") >= 0);
    });

    await t.step("a scrape within a second reuses the same text", async () => {
      // Reuse is promised for a second after a collection ends; a pair of
      // scrapes that took longer than that proves nothing, so try again.
      for (let attempt = 1;; attempt++) {
        const started = performance.now();
        const first = await scrape(proxy);
        const second = await scrape(proxy);
        if (performance.now() - started < 900) {
          assert.equal(second.text, first.text);
          return;
        }
        assert.ok(attempt < 5, "five pairs of scrapes each took over 0.9 s");
      }
    });
  },
);

Deno.test(
  "GET /metrics counts one MISS and one HIT exactly, beside its own manager requests",
  SANITIZED,
  async () => {
    await using lab = await Lab.create();
    const origin = await lab.startOrigin();
    const proxy = await lab.startProxy();
    await waitForReady(proxy);
    const path = `/metrics-counts/${lab.id}`;
    const url = originUrl(path);

    const before = parseMetrics((await scrape(proxy)).text);
    const miss = await curlViaProxy(proxy, url);
    const hit = await curlViaProxy(proxy, url);
    assert.equal(miss.status, 200);
    assert.equal(hit.status, 200);
    assert.equal(hit.body, miss.body);

    // Squid updates its counters where it writes the access-log line, so
    // once both lines are in the file the counters include both requests.
    const entries = await waitForAccessEntry(proxy.name, url, 2);
    assert.equal(entries[0].result, "TCP_MISS", JSON.stringify(entries));
    assert.match(
      entries[1].result,
      /^TCP_(MEM_)?HIT$/,
      JSON.stringify(entries),
    );
    assert.equal(await originCount(origin, path), 1);
    const after = await scrapeFresh(proxy, before);

    // Squid counts a request, manager requests included, when it finishes,
    // so the counters page never counts the request asking for it: the
    // next scrape does. With u(X) the manager requests of scrape X that its
    // own counters page does not count, requests(X) = proxied before X +
    // manager(X) - u(X), so between scrapes A and B: requests(B) -
    // requests(A) = proxied in between + manager(B) - manager(A), exactly
    // when u is the same for every scrape. It is when the counters page is
    // fetched alone before the others (u = 2). Fetching info and counters
    // together, as metrics.ts does now, makes u 1 or 2 depending on which
    // page Squid finishes first: this assertion then fails in about one run
    // in four on a busy machine (reported as a bug).
    const managerDelta = valueOf(after, MANAGER_REQUESTS) -
      valueOf(before, MANAGER_REQUESTS);
    const requestsDelta = valueOf(after, REQUESTS) - valueOf(before, REQUESTS);
    assert.equal(valueOf(after, HITS) - valueOf(before, HITS), 1);
    assert.equal(
      requestsDelta,
      2 + managerDelta,
      `requests rose by ${requestsDelta}; manager requests by ${managerDelta}`,
    );
  },
);

Deno.test(
  "GET /metrics answers squid_up 0 and logs the fix when squid.conf denies the manager",
  SANITIZED,
  async () => {
    await using lab = await Lab.create();
    const base = readFixture("base-squid.conf");
    const squidConf = base.replace(
      /^http_access /m,
      "http_access deny manager\nhttp_access ",
    );
    assert.notEqual(squidConf, base);
    const proxy = await lab.startProxy({ squidConf });
    await waitForReady(proxy);

    const reply = await scrape(proxy);
    assert.equal(reply.status, 200);
    assert.equal(reply.contentType, CONTENT_TYPE);
    const metrics = parseMetrics(reply.text);
    assert.equal(valueOf(metrics, "squid_up"), 0);
    assert.ok(!metrics.has(REQUESTS), reply.text);
    assert.ok(metrics.has("cephaloproxy_start_time_seconds"), reply.text);

    const line = await waitForLogLine(
      proxy.name,
      "stderr",
      /\[WARN\].*"http_access allow localhost manager"/,
    );
    assert.match(line, /HTTP 403/);
    assert.match(line, /squid_up 0/);
  },
);

Deno.test(
  "GET /metrics logs the manager fix even when first scraped before Squid accepts",
  SANITIZED,
  async () => {
    await using lab = await Lab.create();
    const base = readFixture("base-squid.conf");
    const squidConf = base.replace(
      /^http_access /m,
      "http_access deny manager\nhttp_access ",
    );
    const proxy = await lab.startProxy({ squidConf });

    // A scraper that starts with the container: its first scrape comes as
    // soon as the health port answers, usually before Squid accepts, and
    // gets "connection refused". The 403 that follows once Squid runs is a
    // different problem with a different fix, and must still be logged.
    const early = parseMetrics((await scrapeWhenListening(proxy)).text);
    await waitForReady(proxy);
    const later = await scrapeFresh(proxy, early);
    assert.equal(valueOf(later, "squid_up"), 0);
    await waitForLogLine(
      proxy.name,
      "stderr",
      /\[WARN\].*"http_access allow localhost manager"/,
    );
  },
);

Deno.test(
  "CEPHALOPROXY_ACCESS_LOG_STDOUT=1 copies access-log lines to stdout and keeps the file",
  SANITIZED,
  async (t) => {
    await using lab = await Lab.create();
    await lab.startOrigin();

    await t.step("with 1: on stdout and in access.log", async () => {
      const proxy = await lab.startProxy({
        env: { CEPHALOPROXY_ACCESS_LOG_STDOUT: "1" },
      });
      await waitForReady(proxy);
      const url = originUrl(`/stdout-on/${lab.id}`);
      assert.equal((await curlViaProxy(proxy, url)).status, 200);

      const line = await waitForLogLine(proxy.name, "stdout", /TCP_MISS\/200/);
      assert.deepEqual(
        parseAccessLog(line).map((entry) => entry.url),
        [url],
      );
      await waitForAccessEntry(proxy.name, url);
      const { stderr } = await containerLogs(proxy.name);
      assert.ok(!stderr.includes(url), `access-log line on stderr:\n${stderr}`);

      // The option works through a generated config in the runtime dir.
      const wrapper = await readContainerFile(
        proxy.name,
        "/var/run/squid/cephaloproxy-squid.conf",
      );
      assert.match(
        wrapper,
        /^include \/usr\/share\/cephaloproxy\/squid.conf$/m,
      );
      assert.match(wrapper, /^access_log stdio:\/dev\/stdout squid$/m);
    });

    await t.step("without it: in access.log only", async () => {
      const proxy = await lab.startProxy();
      await waitForReady(proxy);
      const url = originUrl(`/stdout-off/${lab.id}`);
      assert.equal((await curlViaProxy(proxy, url)).status, 200);

      await waitForAccessEntry(proxy.name, url);
      const logs = await allLogs(proxy.name);
      assert.ok(
        !logs.includes(url),
        `access-log line in ${ENGINE} logs:\n${logs}`,
      );
    });
  },
);

Deno.test(
  `${ENGINE} stop loses no stdout access-log lines`,
  SANITIZED,
  async () => {
    await using lab = await Lab.create();
    await lab.startOrigin();
    const proxy = await lab.startProxy({
      env: { CEPHALOPROXY_ACCESS_LOG_STDOUT: "1" },
    });
    await waitForReady(proxy);

    const urls = Array.from(
      { length: 20 },
      (_, i) => originUrl(`/stop-flush/${lab.id}/${i}`),
    );
    const replies = await Promise.all(
      urls.map((url) => curlViaProxy(proxy, url)),
    );
    assert.deepEqual(replies.map((reply) => reply.status), Array(20).fill(200));
    await dockerOk(["stop", proxy.name]);
    assert.equal(await waitForExit(proxy.name), 0);

    const { stdout } = await containerLogs(proxy.name);
    const logged = new Set(parseAccessLog(stdout).map((entry) => entry.url));
    const lost = urls.filter((url) => !logged.has(url));
    assert.deepEqual(lost, [], `stdout was:\n${stdout}`);
  },
);

/**
 * Named volumes for the image's persistent state directories. The PID
 * file's directory gets none: the image has no /var/run/squid to seed a
 * volume from, so the entrypoint creates it in the container's own layer,
 * which `docker start` keeps.
 */
async function stateVolumes(volumes: Volumes): Promise<Mount[]> {
  const mounts: Mount[] = [];
  for (const dir of ["spool", "lib", "log"]) {
    mounts.push({
      host: await volumes.create(dir),
      container: `/var/${dir}/squid`,
    });
  }
  return mounts;
}

Deno.test(
  "a container killed with SIGKILL starts again on its volumes and serves",
  SANITIZED,
  async (t) => {
    await using volumes = new Volumes();
    await using lab = await Lab.create();
    const origin = await lab.startOrigin();
    const mounts = await stateVolumes(volumes);
    const path = `/after-kill/${lab.id}`;
    const url = originUrl(path);

    const first = await lab.startProxy({ mounts });
    await waitForReady(first);
    assert.equal((await curlViaProxy(first, url)).status, 200);
    await waitForAccessEntry(first.name, url);
    await waitForLogLine(first.name, "stdout", /Cache directories created/);

    // SIGKILL leaves the PID file in the container and the lock file on
    // the cache volume.
    await dockerOk(["kill", "--signal=KILL", first.name]);
    assert.equal(await waitForExit(first.name), 137);
    const pid = await readContainerFile(first.name, "/var/run/squid/squid.pid");
    assert.match(pid, /^\d+\n?$/);
    await readContainerFile(first.name, "/var/spool/squid/.cephaloproxy.lock");

    await t.step(`${ENGINE} start brings the same container back`, async () => {
      await dockerOk(["start", first.name]);
      const again = await publishedProxy(first.name);
      await waitForReady(again);
      assert.equal((await curlViaProxy(again, url)).status, 200);
      await dockerOk(["kill", "--signal=KILL", first.name]);
      assert.equal(await waitForExit(first.name), 137);
    });

    await t.step("a new container on the same volumes serves", async () => {
      const second = await lab.startProxy({ mounts });
      await waitForReady(second);
      const reply = await curlViaProxy(second, url);
      assert.equal(reply.status, 200);
      assert.ok(reply.body.includes(`path=${path}`), reply.body);

      // The cache was complete, so squid -z did not run again.
      const { stdout } = await containerLogs(second.name);
      assert.ok(!stdout.includes("Creating cache directories"), stdout);

      // Every container appended to the one access.log on the volume. The
      // object fetched before the first SIGKILL was a TCP_HIT after each
      // kill in every run so far (Squid rebuilt its index from the disk
      // cache), but whether Squid had written it out when the kill came is
      // its business; what must hold is that only MISSes reach the origin.
      const entries = await waitForAccessEntry(second.name, url, 3);
      const results = entries.map((entry) => entry.result);
      assert.equal(results[0], "TCP_MISS", results.join(", "));
      assert.equal(
        await originCount(origin, path),
        results.filter((result) => result === "TCP_MISS").length,
        results.join(", "),
      );
    });
  },
);

Deno.test(
  "a half-initialised cache is finished by squid -z before Squid starts",
  SANITIZED,
  async () => {
    await using lab = await Lab.create();
    const spool = await lab.makeDir("spool", 0o775);
    await Deno.chown(spool, 1000, 0);

    // What a squid -z killed half-way leaves: the first 8 of 16 L1 dirs.
    for (let l1 = 0; l1 < CACHE_L1 / 2; l1++) {
      for (let l2 = 0; l2 < CACHE_L2; l2++) {
        const dir = join(spool, hex(l1), hex(l2));
        await Deno.mkdir(dir, { recursive: true });
        await Deno.chown(dir, 1000, 0);
      }
      await Deno.chown(join(spool, hex(l1)), 1000, 0);
    }

    const proxy = await lab.startProxy({
      mounts: [{ host: spool, container: "/var/spool/squid" }],
    });
    await waitForReady(proxy);
    const { stdout } = await containerLogs(proxy.name);
    const creating = stdout.indexOf("Creating cache directories (squid -z)...");
    const created = stdout.indexOf("Cache directories created");
    assert.ok(creating >= 0 && created > creating, stdout);
    assert.ok(stdout.indexOf("Squid started") > created, stdout);

    const last = join(spool, hex(CACHE_L1 - 1), hex(CACHE_L2 - 1));
    assert.ok((await Deno.stat(last)).isDirectory, `${last} is missing`);
  },
);

Deno.test(
  "a second container on the same cache volume exits 1 naming it, and the first serves on",
  SANITIZED,
  async () => {
    await using volumes = new Volumes();
    await using lab = await Lab.create();
    await lab.startOrigin();
    const mounts = [{
      host: await volumes.create("spool"),
      container: "/var/spool/squid",
    }];
    const first = await lab.startProxy({ mounts });
    await waitForReady(first);

    const second = await lab.startProxyExpectingExit({ mounts });
    assert.equal(second.code, 1, second.stderr);
    const line = second.stderr.split("\n").find((text) =>
      text.includes("[ERROR]") && text.includes('"/var/spool/squid"') &&
      text.includes("in use")
    );
    assert.ok(line, `no error naming the volume in:\n${second.stderr}`);
    assert.ok(!second.stdout.includes("Squid started"), second.stdout);

    assert.equal((await getHealth(first, "/ready")).status, 200);
    const url = originUrl(`/shared-volume/${lab.id}`);
    assert.equal((await curlViaProxy(first, url)).status, 200);
    assert.equal((await containerState(first.name)).status, "running");
  },
);
