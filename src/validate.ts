/**
 * Every check that starts nothing: choose the config, read it with its
 * includes, check the paths it needs, prepare and check the SSL-bump
 * files, and let Squid parse it. Used at start, by `--validate-only` and
 * before a SIGHUP reload, so all three judge a config the same way.
 *
 * @module
 */

import { exists } from "./_fs.ts";
import {
  type Additions,
  needsGeneratedConfig,
  siblingNames,
  writeGeneratedConfig,
} from "./generated_config.ts";
import * as log from "./log.ts";
import {
  portTls,
  proxyAddress,
  requiredPaths,
  usesSslBump,
} from "./required_paths.ts";
import type { Settings } from "./settings.ts";
import {
  parseConfig,
  problemLines,
  squidMessage,
  warningLines,
} from "./squid.ts";
import { readSquidConf, type SquidConf } from "./squid_conf.ts";
import {
  checkTlsPair,
  LEGACY_MERGED_PEM,
  loadTlsPairs,
  TlsError,
  writeMergedPem,
} from "./tls.ts";
import { checkPaths, type Identity } from "./volumes.ts";

/** The outcome of validation; `problems` empty means valid. */
export interface Validation {
  configPath: string;
  conf?: SquidConf;
  problems: string[];
  pathsChecked: number;
  sslBump: boolean;
}

/** The line logged when Squid rejects the config (legacy wording). */
export const MSG_PARSE_FAILED = "Configuration validation failed!";

/** Picks the mounted config when present, else the built-in default. */
export function chooseConfig(settings: Settings): string {
  if (exists(settings.configPath)) {
    log.info(`Using custom configuration: ${settings.configPath}`);
    return settings.configPath;
  }
  log.info("Using default configuration");
  return settings.defaultConfigPath;
}

/**
 * Runs the checks in order and stops at the first stage that finds
 * problems, since later stages depend on earlier ones.
 */
export async function validate(
  settings: Settings,
  identity: Identity,
): Promise<Validation> {
  const chosen = chooseConfig(settings);
  const result: Validation = {
    configPath: chosen,
    problems: [],
    pathsChecked: 0,
    sslBump: false,
  };

  // Settings Squid cannot take on its command line need a generated
  // config around the chosen one.
  try {
    const additions = {
      accessLogStdout: settings.accessLogStdout,
      siblings: siblingNames({ ...settings, hostname: Deno.hostname() }),
      siblingHttpPort: settings.squidPort,
    };
    if (needsGeneratedConfig(additions)) {
      result.configPath = writeGeneratedConfig(
        chosen,
        additions,
        settings.runtimeDir,
      );
      logAdditions(additions);
    }
  } catch (err) {
    if (!(err instanceof Error)) throw err;
    result.problems.push(err.message);
    return result;
  }
  const configPath = result.configPath;

  // squid.conf and its includes.
  try {
    result.conf = readSquidConf(configPath);
  } catch (err) {
    if (!(err instanceof SyntaxError || err instanceof Deno.errors.NotFound)) {
      throw err;
    }
    result.problems.push(`Cannot read configuration: ${err.message}`);
    return result;
  }
  const conf = result.conf;

  // Volumes and files named by the config. The legacy merged PEM is made
  // below from the TLS secret, so it is not expected to exist yet.
  const paths = requiredPaths(conf).filter((required) =>
    !(required.access === "readable-file" &&
      required.path === LEGACY_MERGED_PEM)
  );
  result.pathsChecked = paths.length;
  result.problems.push(...checkPaths(paths, identity));
  if (proxyAddress(conf) === null) {
    result.problems.push(
      "No http_port listens on 127.0.0.1 or on all addresses " +
        `(${configPath}): the health checks reach Squid over loopback; ` +
        'add "http_port 127.0.0.1:3128" (or another port) to squid.conf',
    );
  }
  if (result.problems.length > 0) return result;

  // SSL-bump certificate and key.
  result.sslBump = usesSslBump(conf);
  if (result.sslBump) {
    log.info("SSL-bump detected in configuration");
    try {
      prepareTls(conf, settings);
    } catch (err) {
      if (!(err instanceof TlsError)) throw err;
      result.problems.push(err.message);
      return result;
    }
    log.info("SSL certificates validated and merged");
  }

  // Squid's own judgement.
  log.info("Validating Squid configuration...");
  const job = await parseConfig(settings.squidBin, configPath);
  if (!job.success) {
    for (const line of warningLines(job.lines)) {
      log.warn(squidMessage(line));
    }
    const lines = problemLines(job.lines).map(squidMessage);
    result.problems.push(
      ...(lines.length > 0 ? lines : job.lines.slice(-5)),
      `${MSG_PARSE_FAILED} squid -k parse rejected ${configPath}; ` +
        "fix the lines above",
    );
    return result;
  }
  log.info("Configuration validation passed");
  return result;
}

function logAdditions(additions: Additions): void {
  if (additions.accessLogStdout) log.info("Access log also goes to stdout");
  if (additions.siblings.length > 0) {
    log.info(`Sibling proxies (HTCP): ${additions.siblings.join(", ")}`);
  }
}

function prepareTls(conf: SquidConf, settings: Settings): void {
  const pairs = loadTlsPairs(portTls(conf), settings.sslCertDir);
  for (const pair of pairs) {
    for (const warning of checkTlsPair(pair)) log.warn(warning);
    if (pair.certPath.startsWith(settings.sslCertDir + "/")) {
      writeMergedPem(pair, LEGACY_MERGED_PEM);
    }
  }
}
