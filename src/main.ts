/**
 * CephaloProxy's entrypoint: validates everything, prepares the cert DB
 * and cache, serves /health and /ready, then runs and supervises Squid.
 * Only this module ends the process.
 *
 * @module
 */

import { dirname } from "node:path";
import * as log from "./log.ts";
import { needsCreation, sizeWarnings } from "./cache.ts";
import { CertDbError, ensureCertDb } from "./cert_db.ts";
import { countActiveRequests } from "./cache_manager.ts";
import { CacheInUseError, lockCacheDirs } from "./cache_lock.ts";
import {
  createHealthHandler,
  type HealthChecks,
  proxyAccepts,
} from "./health.ts";
import { MetricsCollector, type MetricsSource } from "./metrics.ts";
import {
  cacheDirs,
  cacheMemBytes,
  certDbDir,
  certDbSize,
  certgenChildren,
  pidFile,
  proxyAddress,
} from "./required_paths.ts";
import { readSettings, type Settings, USAGE } from "./settings.ts";
import {
  createCacheDirs,
  problemLines,
  proxyArgs,
  SpawnError,
  squidMessage,
} from "./squid.ts";
import { findAll, type SquidConf } from "./squid_conf.ts";
import { watchSiblingDns } from "./sibling_dns.ts";
import { Supervisor } from "./supervisor.ts";
import { validate, type Validation } from "./validate.ts";
import { currentIdentity } from "./volumes.ts";
import { createDirIfAbsent, removeIfPresent, STATE_DIR_MODE } from "./_fs.ts";

/** Exit code for bad input: config, volumes, TLS files, flags. */
const EXIT_INVALID = 1;

const STARTED_AT = Date.now();
const MIB = 1024 * 1024;
const ACCEPT_POLL_MS = 50;

async function main(argv: string[]): Promise<number> {
  // Flags and environment.
  let settings: Settings;
  try {
    settings = readSettings(argv);
  } catch (err) {
    if (!(err instanceof RangeError || err instanceof TypeError)) throw err;
    log.error(err.message);
    return EXIT_INVALID;
  }
  if (settings.help) {
    log.print(USAGE);
    return 0;
  }

  // Everything that starts nothing.
  const identity = currentIdentity();
  log.info(`Running as UID:${identity.uid} GID:${identity.gid}`);
  log.info("Checking Squid configuration...");
  const validation = await validate(settings, identity);
  if (validation.problems.length > 0) {
    for (const problem of validation.problems) log.error(problem);
    log.error(
      settings.validateOnly
        ? "Validation failed: fix the errors above"
        : "Startup aborted: fix the errors above; nothing was started",
    );
    return EXIT_INVALID;
  }
  const conf = validation.conf!;
  if (settings.validateOnly) {
    log.info(summary(validation));
    return 0;
  }

  // Cache lock, cert DB and cache.
  log.info("Initializing Squid cache...");
  const locks = prepareLocks(conf);
  if (!locks || !await prepareState(settings, validation.configPath, conf)) {
    return EXIT_INVALID;
  }

  // Health server, then Squid.
  const proxy = proxyAddress(conf) ??
    { hostname: "127.0.0.1", port: settings.squidPort };
  const supervisor = new Supervisor({
    squidBin: settings.squidBin,
    args: proxyArgs(validation.configPath, settings.logLevel),
    drainMs: settings.drainSeconds * 1000,
    countActiveRequests: () => countActiveRequests(proxy),
    validateReload: async () => {
      const reload = await validate(settings, currentIdentity());
      if (reload.problems.length === 0) useReloadedConfig(reload);
      return reload.problems;
    },
  });
  let startupSeconds: number | undefined;
  const source: MetricsSource = {
    proxy,
    ...configuredSizes(conf),
    stats: {
      startTimeSeconds: STARTED_AT / 1000,
      startupSeconds: () => startupSeconds,
      reloads: () => supervisor.reloads(),
      reloadFailures: () => supervisor.reloadFailures(),
    },
  };
  const metrics = new MetricsCollector(source);
  const checks: HealthChecks = {
    squidProblem: () => supervisor.squidProblem(),
    draining: () => supervisor.draining(),
    proxy,
    cacheDirs: cacheDirs(conf).map((dir) => dir.path),
    configPath: validation.configPath,
    metrics: () => metrics.render(),
  };
  const server = startHealthServer(settings, checks);

  // What readiness and metrics report follows a reloaded config; the proxy
  // address stays the one Squid was started with.
  function useReloadedConfig(reload: Validation): void {
    checks.cacheDirs = cacheDirs(reload.conf!).map((dir) => dir.path);
    checks.configPath = reload.configPath;
    Object.assign(source, configuredSizes(reload.conf!));
  }

  log.info("Starting Squid proxy...");
  logStartDetails(conf, proxy, settings);
  // A PID file left by a killed container would make Squid refuse to start
  // if its number matched a live process here.
  const pid = pidFile(conf);
  if (pid) removeIfPresent(pid.path);
  log.info(`Squid started with PID ${supervisor.spawn()}`);
  waitUntilAccepting(proxy, supervisor).then((seconds) => {
    startupSeconds = seconds;
  });
  if (findAll(conf, "cache_peer").length > 0) {
    watchSiblingDns(proxy, {
      active: () => !supervisor.squidProblem() && !supervisor.draining(),
      reconfigure: () => supervisor.requestReload(),
    });
  }

  // Supervise until Squid exits.
  const code = await supervisor.run();
  await server.shutdown();
  for (const lock of locks) lock.close();
  log.info("Shutdown complete");
  return code;
}

/** The cache, memory and helper limits a config sets, for metrics. */
function configuredSizes(conf: SquidConf) {
  return {
    cacheDiskConfiguredBytes: cacheDirs(conf)
      .reduce((sum, dir) => sum + dir.sizeMb * MIB, 0),
    cacheMemConfiguredBytes: cacheMemBytes(conf),
    certgenHelpersMax: certDbDir(conf) ? certgenChildren(conf) : undefined,
  };
}

function prepareLocks(conf: SquidConf): Deno.FsFile[] | undefined {
  try {
    return lockCacheDirs(cacheDirs(conf).map((dir) => dir.path));
  } catch (err) {
    if (!(err instanceof CacheInUseError)) throw err;
    log.error(err.message);
    return undefined;
  }
}

function logStartDetails(
  conf: SquidConf,
  proxy: { hostname: string; port: number },
  settings: Settings,
): void {
  const dirs = cacheDirs(conf).map((dir) => dir.path);
  log.info(`Proxy port: ${proxy.port}`);
  log.info(`Cache directory: ${dirs.join(", ") || "none"}`);
  log.info(`Log level: ${settings.logLevel}`);
  log.info(`PID file location: ${pidFile(conf)?.path ?? "none"}`);
}

/**
 * Polls the proxy port until Squid accepts, so the startup time can be
 * logged and exported; gives up when Squid is gone.
 */
async function waitUntilAccepting(
  proxy: { hostname: string; port: number },
  supervisor: Supervisor,
): Promise<number | undefined> {
  while (supervisor.squidProblem() === undefined) {
    if (await proxyAccepts(proxy)) {
      const seconds = (Date.now() - STARTED_AT) / 1000;
      log.info(
        `Squid is accepting connections on ${proxy.hostname}:${proxy.port} ` +
          `(${seconds.toFixed(2)} s after the entrypoint started)`,
      );
      return seconds;
    }
    await new Promise((resolve) => setTimeout(resolve, ACCEPT_POLL_MS));
  }
  return undefined;
}

async function prepareState(
  settings: Settings,
  configPath: string,
  conf: SquidConf,
): Promise<boolean> {
  const pid = pidFile(conf);
  if (pid && createDirIfAbsent(dirname(pid.path), STATE_DIR_MODE)) {
    log.info(`Created runtime directory ${dirname(pid.path)}`);
  }

  const certDb = certDbDir(conf);
  if (certDb) {
    try {
      const result = await ensureCertDb(
        settings.certgenBin,
        certDb.path,
        certDbSize(conf),
      );
      log.info(`SSL certificate database ${result}: ${certDb.path}`);
    } catch (err) {
      if (!(err instanceof CertDbError)) throw err;
      log.error(err.message);
      return false;
    }
  }

  const dirs = cacheDirs(conf);
  if (dirs.some(needsCreation)) {
    log.info("Creating cache directories (squid -z)...");
    const job = await createCacheDirs(settings.squidBin, configPath);
    if (!job.success || dirs.some(needsCreation)) {
      for (const line of problemLines(job.lines)) {
        log.error(squidMessage(line));
      }
      log.error(
        `Cache initialization failed (squid -z exit code ${job.code}) for ` +
          dirs.map((dir) => dir.path).join(", "),
      );
      return false;
    }
    log.info("Cache directories created");
  }
  for (const dir of dirs) {
    for (const warning of sizeWarnings(dir)) log.warn(warning);
  }
  return true;
}

function startHealthServer(
  settings: Settings,
  checks: HealthChecks,
): Deno.HttpServer {
  log.info(`Starting health check server on port ${settings.healthPort}...`);
  return Deno.serve({
    hostname: "0.0.0.0",
    port: settings.healthPort,
    onListen: () => log.info(`Health check server started (PID: ${Deno.pid})`),
    onError: (err) => {
      log.error(`Health request failed: ${err}`);
      return new Response("Internal error\n", { status: 500 });
    },
  }, createHealthHandler(checks));
}

function summary(validation: Validation): string {
  const conf = validation.conf!;
  return `Validation passed: ${validation.configPath} ` +
    `(${conf.files.length} file(s), ${conf.directives.length} directives), ` +
    `${validation.pathsChecked} required path(s) checked, SSL-bump ` +
    `${validation.sslBump ? "on" : "off"}, squid -k parse OK`;
}

/** Runs main() and turns a program that cannot start into its exit code. */
async function runMain(argv: string[]): Promise<number> {
  try {
    return await main(argv);
  } catch (err) {
    if (!(err instanceof SpawnError)) throw err;
    log.error(err.message);
    return err.exitCode;
  }
}

if (import.meta.main) {
  Deno.exit(await runMain(Deno.args));
}
