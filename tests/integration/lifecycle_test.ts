/**
 * The container's life after start: graceful stops that let transfers
 * finish, exit codes for each signal, reloads on SIGHUP that check the
 * config first, a container that ends when Squid dies, no zombies when
 * helpers die, and a health server that bad clients cannot stall.
 *
 * Processes are seen and signalled from a sidecar in the proxy's PID
 * namespace (see `_lifecycle.ts`), since the image has no shell.
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { createCa } from "./_certs.ts";
import {
  allLogs,
  assertLineWith,
  curlViaProxy,
  docker,
  dockerOk,
  ENGINE,
  getHealth,
  type HealthReply,
  Lab,
  type Proxy,
  readFixture,
  SANITIZED,
  waitFor,
  waitForExit,
  waitForReady,
} from "./_harness.ts";
import {
  CurlTransfer,
  exchangeRaw,
  findSquid,
  inspectState,
  listProcesses,
  parseDockerTime,
  pause,
  type ProcessInfo,
  runSidecar,
  signalProcess,
  SlowClient,
  startStreamOrigin,
  STREAM_ORIGIN_HOST,
  STREAM_ORIGIN_HTTPS_PORT,
  STREAM_ORIGIN_PORT,
} from "./_lifecycle.ts";
import { slowChunk } from "../fixtures/integration/origin.ts";

/** Legacy log lines, worded as operators grep for them. */
const MSG_SHUTDOWN =
  "Received shutdown signal, initiating graceful shutdown...";
const MSG_STOPPING = "Shutting down Squid...";
const MSG_COMPLETE = "Shutdown complete";
const MSG_DIED = "Squid process died unexpectedly";
const MSG_IDLE = "No transfers in flight";
const MSG_RELOADING = "Configuration valid; Squid is reconfiguring";
const MSG_RELOAD_REJECTED = "Configuration reload rejected";
const MSG_KILLING = "killing it";

/** Docker's stop timeout in these tests, longer than any drain here. */
const STOP_TIMEOUT_S = 30;
/** Long enough for the slow transfer, short enough to bound the test. */
const DRAIN_SECONDS = 10;
/** The slow transfer: 9 lines, one every 500 ms, so about 4 s. */
const SLOW_CHUNKS = 9;
const SLOW_INTERVAL_MS = 500;
/** The supervisor's SIGINT-to-SIGKILL grace, plus Docker's own overhead. */
const FAST_SHUTDOWN_SLACK_MS = 5000;

const EXIT_SIGKILL = 128 + 9;
/** Names the HTTPS origin answers to; each makes Squid mint a certificate. */
const BUMP_HOSTS = ["bump-1.test", "bump-2.test", "bump-3.test", "bump-4.test"];

/** `docker stop --time 30`; returns its exit code and duration. */
async function stopContainer(name: string) {
  const started = performance.now();
  const args = ["stop", "--time", String(STOP_TIMEOUT_S), name];
  const result = await docker(args, { timeoutMs: STOP_TIMEOUT_S * 2000 });
  return { ...result, ms: performance.now() - started };
}

/** Asserts that the logs hold the three legacy shutdown lines, in order. */
function assertShutdownLines(logs: string): void {
  let from = 0;
  for (const line of [MSG_SHUTDOWN, MSG_STOPPING, MSG_COMPLETE]) {
    const at = logs.indexOf(`[INFO] ${line}`, from);
    assert.ok(at >= 0, `no "[INFO] ${line}" after offset ${from} in:\n${logs}`);
    from = at;
  }
}

/** A health reply, or undefined while the server does not answer. */
async function tryHealth(proxy: Proxy, path: string) {
  try {
    return await getHealth(proxy, path);
  } catch (err) {
    if (err instanceof TypeError) return undefined;
    throw err;
  }
}

/** Sends one request with `Connection: close` and returns the raw reply. */
function requestRaw(address: string, method: string, path: string) {
  const request = `${method} ${path} HTTP/1.1\r\nHost: health\r\n` +
    "Connection: close\r\n\r\n";
  return exchangeRaw(address, new TextEncoder().encode(request));
}

/** Splits a raw HTTP/1.1 reply; header names in lower case. */
function splitReply(reply: string) {
  const end = reply.indexOf("\r\n\r\n");
  assert.ok(end > 0, `no end of headers in ${JSON.stringify(reply)}`);
  const [statusLine, ...lines] = reply.slice(0, end).split("\r\n");
  const headers = new Map(lines.map((line) => {
    const colon = line.indexOf(":");
    return [
      line.slice(0, colon).trim().toLowerCase(),
      line.slice(colon + 1).trim(),
    ];
  }));
  return { statusLine, headers, body: reply.slice(end + 4) };
}

/** The health server's `127.0.0.1:PORT`. */
function healthAddress(proxy: Proxy): string {
  return new URL(proxy.healthUrl).host;
}

Deno.test(
  `${ENGINE} stop of an idle proxy exits 0 at once, well within the drain`,
  SANITIZED,
  async () => {
    await using lab = await Lab.create();
    const proxy = await lab.startProxy({
      env: { CEPHALOPROXY_DRAIN_SECONDS: "15" },
    });
    await waitForReady(proxy);

    const stop = await stopContainer(proxy.name);
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal((await inspectState(proxy.name)).exitCode, 0);
    assert.ok(stop.ms < 5000, `docker stop took ${stop.ms.toFixed(0)} ms`);

    const logs = await allLogs(proxy.name);
    assertShutdownLines(logs);
    assertLineWith(logs, ["[INFO] ", MSG_IDLE]);
    assert.ok(!logs.includes(MSG_KILLING), "Squid had to be killed");
  },
);

Deno.test(
  `${ENGINE} kill -s TERM or INT stops an idle proxy gracefully with exit 0`,
  SANITIZED,
  async (t) => {
    await using lab = await Lab.create();
    for (const signal of ["TERM", "INT"]) {
      await t.step(`SIG${signal} gives exit code 0`, async () => {
        const proxy = await lab.startProxy();
        await waitForReady(proxy);
        await dockerOk(["kill", "--signal", signal, proxy.name]);
        assert.equal(await waitForExit(proxy.name, 15_000), 0);
        const logs = await allLogs(proxy.name);
        assertShutdownLines(logs);
        assertLineWith(logs, ["[INFO] ", MSG_IDLE]);
      });
    }
  },
);

Deno.test(
  `${ENGINE} stop lets an in-flight transfer finish while /ready answers 503`,
  SANITIZED,
  async (t) => {
    await using lab = await Lab.create();
    await startStreamOrigin(lab);
    const proxy = await lab.startProxy({
      env: { CEPHALOPROXY_DRAIN_SECONDS: String(DRAIN_SECONDS) },
    });
    await waitForReady(proxy);
    const url = `http://${STREAM_ORIGIN_HOST}:${STREAM_ORIGIN_PORT}/slow` +
      `?chunks=${SLOW_CHUNKS}&interval=${SLOW_INTERVAL_MS}`;

    // Stop once the body has begun to arrive, then watch the health
    // server until the transfer ends.
    await using transfer = new CurlTransfer(proxy, url);
    await transfer.firstBytes();
    const stopStarted = performance.now();
    const stopping = stopContainer(proxy.name);
    const samples: { ready: HealthReply; health: HealthReply }[] = [];
    try {
      await waitFor("/ready to answer 503", async () => {
        return (await tryHealth(proxy, "/ready"))?.status === 503;
      }, 5000);
      let ended = false;
      const ending = transfer.result().then(() => ended = true);
      while (!ended) {
        samples.push({
          ready: await getHealth(proxy, "/ready"),
          health: await getHealth(proxy, "/health"),
        });
        await Promise.race([pause(), ending]);
      }
    } finally {
      await stopping;
    }
    const result = await transfer.result();
    const stop = await stopping;

    await t.step("curl gets status 200 and the whole body", () => {
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.status, 200);
      const expected = Array.from(
        { length: SLOW_CHUNKS },
        (_, i) => slowChunk(i, SLOW_CHUNKS),
      ).join("");
      assert.equal(result.body.length, expected.length);
      assert.equal(result.body, expected);
    });

    await t.step("the transfer was still running seconds into the stop", () => {
      const ms = result.endedAt - stopStarted;
      assert.ok(ms > 2500, `curl ended ${ms.toFixed(0)} ms after docker stop`);
    });

    await t.step("/ready answered 503 Shutting down during the drain", () => {
      assert.ok(samples.length >= 5, `only ${samples.length} samples`);
      for (const { ready } of samples) {
        assert.equal(ready.status, 503, ready.body);
        assert.match(ready.body, /^Shutting down: not taking new requests$/m);
      }
    });

    // Squid closes its listening port on SIGTERM; liveness must not fail
    // for that, or a probe could restart the container mid-drain.
    await t.step("/health stayed 200 OK during the drain", () => {
      for (const { health } of samples) {
        assert.equal(health.status, 200, health.body);
        assert.equal(health.body, "OK\n");
      }
    });

    await t.step(
      `the container exits 0 without ${ENGINE}'s SIGKILL`,
      async () => {
        assert.equal(stop.code, 0, stop.stderr);
        assert.equal((await inspectState(proxy.name)).exitCode, 0);
        const limit = DRAIN_SECONDS * 1000 + FAST_SHUTDOWN_SLACK_MS;
        assert.ok(stop.ms < limit, `stop took ${stop.ms.toFixed(0)} ms`);
      },
    );

    await t.step("the logs show the legacy shutdown lines", async () => {
      const logs = await allLogs(proxy.name);
      assertShutdownLines(logs);
      assertLineWith(logs, [
        "[INFO] ",
        `Waiting up to ${DRAIN_SECONDS} s for 1 transfer(s) to finish`,
      ]);
      assert.ok(!logs.includes(MSG_KILLING), "Squid had to be killed");
    });
  },
);

Deno.test(
  "SIGHUP after an ACL file changes makes Squid deny without a restart",
  SANITIZED,
  async () => {
    await using lab = await Lab.create();
    await lab.startOrigin();
    const confD = await lab.makeDir("conf.d");
    const aclFile = await lab.writeFile(
      "conf.d/blocked-domains.acl",
      "# Domains the reload test denies.\n.blocked.test\n",
    );
    await lab.writeFile(
      "conf.d/also-blocked.conf",
      readFixture("acl/also-blocked.conf"),
    );
    const proxy = await lab.startProxy({
      squidConf: readFixture("acl/squid.conf"),
      mounts: [{ host: confD, container: "/etc/squid/conf.d", readOnly: true }],
    });
    await waitForReady(proxy);
    const url = "http://allowed.test:8000/reload";
    assert.equal((await curlViaProxy(proxy, url)).status, 200);
    const before = await inspectState(proxy.name);
    const { squid } = await findSquid(lab, proxy.name);

    await Deno.writeTextFile(aclFile, "allowed.test\n", { append: true });
    await dockerOk(["kill", "--signal", "HUP", proxy.name]);
    let last = "";
    await waitFor("the request to be denied after SIGHUP", async () => {
      try {
        const reply = await curlViaProxy(proxy, url);
        last = `status ${reply.status}`;
        return reply.status === 403;
      } catch (err) {
        // Squid may refuse a connection for a moment while it reconfigures.
        if (!(err instanceof Error && err.message.startsWith("curl "))) {
          throw err;
        }
        last = err.message;
        return false;
      }
    }, 15_000).catch((err) => {
      throw new Error(`${err.message} (last: ${last})`);
    });

    const after = await inspectState(proxy.name);
    assert.equal(after.status, "running");
    assert.equal(after.startedAt, before.startedAt);
    assert.equal(after.restartCount, 0);
    assert.equal((await findSquid(lab, proxy.name)).squid.pid, squid.pid);
    const logs = await allLogs(proxy.name);
    assertLineWith(logs, ["[INFO] ", MSG_RELOADING]);
    assert.equal(logs.match(/\[INFO\] Squid started with PID/g)?.length, 1);
  },
);

Deno.test(
  "SIGHUP with a broken squid.conf is refused and Squid keeps serving",
  SANITIZED,
  async (t) => {
    await using lab = await Lab.create();
    await lab.startOrigin();
    // The directory is mounted, not the file, so host edits show inside.
    const etc = await lab.makeDir("etc-squid");
    const good = readFixture("base-squid.conf");
    const confPath = await lab.writeFile("etc-squid/squid.conf", good);
    const proxy = await lab.startProxy({
      mounts: [{ host: etc, container: "/etc/squid", readOnly: true }],
    });
    await waitForReady(proxy);
    const { squid } = await findSquid(lab, proxy.name);

    await Deno.writeTextFile(confPath, good + "bogus_directive on\n");
    await dockerOk(["kill", "--signal", "HUP", proxy.name]);
    const logs = await waitFor("the reload to be rejected", async () => {
      const logs = await allLogs(proxy.name);
      return logs.includes(MSG_RELOAD_REJECTED) && logs;
    }, 15_000);

    await t.step("the logs name the rejection and the directive", () => {
      assertLineWith(logs, ["[ERROR] ", MSG_RELOAD_REJECTED]);
      assertLineWith(logs, ["[ERROR] ", "bogus_directive"]);
      assert.ok(!logs.includes(MSG_RELOADING), "Squid was told to reload");
    });

    await t.step(
      "proxied requests still get 200 from the same Squid",
      async () => {
        for (const path of ["/after-1", "/after-2", "/after-3"]) {
          const reply = await curlViaProxy(
            proxy,
            `http://allowed.test:8000${path}`,
          );
          assert.equal(reply.status, 200, path);
        }
        assert.equal((await findSquid(lab, proxy.name)).squid.pid, squid.pid);
      },
    );

    await t.step("/ready still answers 200", async () => {
      const reply = await getHealth(proxy, "/ready");
      assert.equal(reply.status, 200, reply.body);
    });

    await t.step("a fixed config and another SIGHUP reload Squid", async () => {
      await Deno.writeTextFile(confPath, good);
      await dockerOk(["kill", "--signal", "HUP", proxy.name]);
      await waitFor("the reload to be accepted", async () => {
        return (await allLogs(proxy.name)).includes(MSG_RELOADING);
      }, 15_000);
      await waitForReady(proxy);
      const reply = await curlViaProxy(proxy, "http://allowed.test:8000/fixed");
      assert.equal(reply.status, 200);
    });
  },
);

Deno.test(
  "a SIGKILLed Squid ends the container within 2 s with its exit code",
  SANITIZED,
  async () => {
    await using lab = await Lab.create();
    const proxy = await lab.startProxy();
    await waitForReady(proxy);
    const { squid } = await findSquid(lab, proxy.name);

    const killedAt = await signalProcess(lab, proxy.name, squid.pid, "KILL");
    const code = await waitForExit(proxy.name, 10_000);
    const state = await inspectState(proxy.name);
    const delayMs = parseDockerTime(state.finishedAt) - killedAt;

    assert.notEqual(code, 0);
    assert.equal(code, EXIT_SIGKILL, "exit code is not 128 + SIGKILL");
    assert.ok(delayMs < 2000, `exited ${delayMs.toFixed(0)} ms after kill`);
    assertLineWith(await allLogs(proxy.name), [
      "[ERROR] ",
      MSG_DIED,
      "SIGKILL",
    ]);
  },
);

/** Fails with the zombies' details unless none is left within 5 s. */
async function assertNoZombies(lab: Lab, container: string): Promise<void> {
  let zombies: ProcessInfo[] = [];
  try {
    await waitFor("no zombie processes", async () => {
      const processes = await listProcesses(lab, container);
      zombies = processes.filter((proc) => proc.state === "Z");
      return zombies.length === 0;
    }, 5000);
  } catch (err) {
    if (!(err instanceof Error)) throw err;
    throw new Error(`${err.message}: ${JSON.stringify(zombies)}`);
  }
}

Deno.test(
  "helpers killed with SIGKILL are restarted or reaped and leave no zombies",
  SANITIZED,
  async (t) => {
    await using lab = await Lab.create();
    const originCa = await createCa(join(lab.dir, "origin-ca"), "Origin CA");
    await startStreamOrigin(lab, { hosts: BUMP_HOSTS, ca: originCa });
    const bumpCa = await createCa(join(lab.dir, "ssl_cert"), "Bump CA");
    const proxy = await lab.startProxy({
      squidConf: readFixture("ssl-bump/squid.conf"),
      confD: { "origin-ca.pem": await Deno.readTextFile(originCa.certPath) },
      sslCertDir: dirname(bumpCa.certPath),
    });
    await waitForReady(proxy);
    const bumped = (host: string, path: string) => {
      const url = `https://${host}:${STREAM_ORIGIN_HTTPS_PORT}${path}`;
      return curlViaProxy(proxy, url, { caCert: bumpCa.certPath });
    };

    // Squid exits ("helpers are crashing too rapidly") when a helper that
    // never answered dies within 30 s of its start, so the one killed
    // below first serves a request: Squid hands work to its first helper.
    const { squid } = await findSquid(lab, proxy.name);
    assert.equal((await bumped(BUMP_HOSTS[0], "/first")).status, 200);
    const helpers = (await listProcesses(lab, proxy.name))
      .filter((proc) => proc.comm === "security_file_c")
      .filter((proc) => proc.ppid === squid.pid)
      .sort((a, b) => a.pid - b.pid);
    assert.ok(helpers.length > 0, "no certgen helpers run");

    await t.step(
      "Squid starts a new certgen helper for a killed one",
      async () => {
        await signalProcess(lab, proxy.name, helpers[0].pid, "KILL");
        await waitFor("a replacement certgen helper", async () => {
          const now = (await listProcesses(lab, proxy.name))
            .filter((proc) => proc.comm === "security_file_c");
          return !now.some((proc) => proc.pid === helpers[0].pid) &&
            now.length === helpers.length;
        }, 10_000);
        assertLineWith(await allLogs(proxy.name), [
          "sslcrtd_program",
          "exited",
        ]);
      },
    );

    await t.step(
      "bumped requests for new host names still get 200",
      async () => {
        // Squid keeps each minted certificate in memory, so only a new
        // host name makes it ask a helper.
        for (const host of BUMP_HOSTS.slice(1)) {
          const reply = await bumped(host, "/after-kill");
          assert.equal(reply.status, 200, `${host}: ${reply.body}`);
        }
      },
    );

    // unlinkd runs with any ufs cache_dir; pinger only while it can open
    // an ICMP socket, which the image's non-root user cannot.
    await t.step(
      "Squid reaps its other helpers killed with SIGKILL",
      async () => {
        const others = (await listProcesses(lab, proxy.name))
          .filter((proc) => proc.ppid === squid.pid)
          .filter((proc) => proc.comm !== "security_file_c");
        assert.ok(
          others.some((proc) => proc.comm === "unlinkd"),
          `no unlinkd under Squid: ${JSON.stringify(others)}`,
        );
        for (const helper of others) {
          await signalProcess(lab, proxy.name, helper.pid, "KILL");
        }
        const killed = others.map((proc) => proc.pid);
        await waitFor("the killed helpers to be reaped", async () => {
          const now = await listProcesses(lab, proxy.name);
          return !now.some((proc) => killed.includes(proc.pid));
        }, 10_000);
        const reply = await bumped(BUMP_HOSTS[0], "/after-helpers");
        assert.equal(reply.status, 200, reply.body);
      },
    );

    await t.step("no process in the container is a zombie", async () => {
      await assertNoZombies(lab, proxy.name);
      const state = await inspectState(proxy.name);
      assert.equal(state.status, "running");
      assert.equal((await findSquid(lab, proxy.name)).squid.pid, squid.pid);
    });

    // A process whose parent exits is re-parented to PID 1 (tini) in the
    // proxy's namespace, as a helper that outlived Squid would be. The
    // sidecar makes one: a subshell starts it and exits at once.
    await t.step("an orphan re-parented to tini is reaped", async () => {
      const output = await runSidecar(lab, proxy.name, [
        "orphan=$( (sleep 2 </dev/null >/dev/null 2>&1 & echo $!) )",
        "for _ in $(seq 50); do",
        '  read -r line <"/proc/$orphan/stat" || break',
        '  set -- ${line##*) }; [ "$2" = 1 ] && break; sleep 0.1',
        "done",
        'echo "$orphan ${2:-gone}"',
      ]);
      const [pid, ppid] = output.trim().split(" ");
      assert.equal(ppid, "1", `orphan ${pid} was not re-parented to PID 1`);
      await waitFor(`orphan ${pid} to be reaped`, async () => {
        const processes = await listProcesses(lab, proxy.name);
        return !processes.some((proc) => proc.pid === Number(pid));
      }, 10_000);
      await assertNoZombies(lab, proxy.name);
    });
  },
);

Deno.test(
  "health server stays responsive under load, slow clients and garbage",
  SANITIZED,
  async (t) => {
    await using lab = await Lab.create();
    const proxy = await lab.startProxy();
    await waitForReady(proxy);
    const address = healthAddress(proxy);

    await t.step("100 concurrent GET /health all answer 200 OK", async () => {
      const replies = await Promise.all(
        Array.from({ length: 100 }, () => getHealth(proxy, "/health")),
      );
      for (const reply of replies) {
        assert.equal(reply.status, 200, reply.body);
        assert.equal(reply.body, "OK\n");
      }
    });

    await t.step(
      "slowloris clients do not delay /health beyond 1 s",
      async () => {
        const slow: SlowClient[] = [];
        try {
          for (let i = 0; i < 10; i++) {
            slow.push(await SlowClient.open(address));
          }
          await waitFor("the slow clients to send 20 bytes each", () => {
            return Promise.resolve(slow.every((c) => c.bytesSent() >= 20));
          }, 10_000);
          for (let i = 0; i < 5; i++) {
            const started = performance.now();
            const reply = await getHealth(proxy, "/health");
            const ms = performance.now() - started;
            assert.equal(reply.status, 200);
            assert.ok(ms < 1000, `/health took ${ms.toFixed(0)} ms`);
          }
          assert.ok(
            slow.every((client) => !client.closedByServer()),
            "a slow client was cut off before the checks ended",
          );
        } finally {
          for (const client of slow) await client[Symbol.asyncDispose]();
        }
      },
    );

    await t.step(
      "garbage bytes get a 400 or a close, and the server keeps answering",
      async () => {
        const garbage = new TextEncoder().encode("\x00\x01GARBAGE\r\n\r\n");
        const reply = await exchangeRaw(address, garbage);
        assert.ok(
          reply === "" || /^HTTP\/1\.[01] 400 /.test(reply),
          `unexpected reply: ${JSON.stringify(reply.slice(0, 200))}`,
        );
        assert.equal((await getHealth(proxy, "/health")).status, 200);
      },
    );

    // RFC 9110, section 8.6: a Content-Length in a reply to HEAD must be
    // the length GET would send.
    await t.step(
      "HEAD /health answers 200 with GET's headers and no body",
      async () => {
        const head = splitReply(await requestRaw(address, "HEAD", "/health"));
        const get = splitReply(await requestRaw(address, "GET", "/health"));
        assert.match(head.statusLine, /^HTTP\/1\.1 200 /);
        assert.equal(head.body, "", "HEAD reply has a body");
        assert.equal(get.body, "OK\n");
        assert.equal(head.headers.get("content-type"), "text/plain");
        const length = head.headers.get("content-length");
        assert.ok(
          length === undefined || length === String(get.body.length),
          `HEAD sends content-length ${length}; GET sends ` +
            `${get.body.length} bytes`,
        );
      },
    );

    await t.step("POST /health answers 405 and allows GET, HEAD", async () => {
      const response = await fetch(`${proxy.healthUrl}/health`, {
        method: "POST",
        body: "x",
      });
      await response.body?.cancel();
      assert.equal(response.status, 405);
      assert.equal(response.headers.get("allow"), "GET, HEAD");
    });
  },
);
