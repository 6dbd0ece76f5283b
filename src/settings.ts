/**
 * Command-line flags and environment variables, read once at start.
 * Each environment variable name is a constant so help text and error
 * messages quote the same name the operator sets.
 *
 * @module
 */

import { parseArgs } from "node:util";

export const ENV_HEALTH_PORT = "HEALTH_PORT";
export const ENV_SQUID_PORT = "SQUID_PORT";
export const ENV_LOG_LEVEL = "LOG_LEVEL";
export const ENV_DRAIN_SECONDS = "CEPHALOPROXY_DRAIN_SECONDS";
export const ENV_CONFIG = "CEPHALOPROXY_CONFIG";
export const ENV_DEFAULT_CONFIG = "CEPHALOPROXY_DEFAULT_CONFIG";
export const ENV_SSL_CERT_DIR = "CEPHALOPROXY_SSL_CERT_DIR";
export const ENV_SQUID_BIN = "CEPHALOPROXY_SQUID";
export const ENV_CERTGEN_BIN = "CEPHALOPROXY_CERTGEN";
export const ENV_ACCESS_LOG_STDOUT = "CEPHALOPROXY_ACCESS_LOG_STDOUT";
export const ENV_RUNTIME_DIR = "CEPHALOPROXY_RUNTIME_DIR";
export const ENV_PEERS = "CEPHALOPROXY_PEERS";
export const ENV_PEER_COUNT = "CEPHALOPROXY_PEER_COUNT";
export const ENV_PEER_SERVICE = "CEPHALOPROXY_PEER_SERVICE";

/** Everything the entrypoint is told from outside. */
export interface Settings {
  validateOnly: boolean;
  help: boolean;
  healthPort: number;
  squidPort: number;
  logLevel: number;
  drainSeconds: number;
  /** Where an operator mounts their config; used when it exists. */
  configPath: string;
  /** The built-in config, used when nothing is mounted. */
  defaultConfigPath: string;
  sslCertDir: string;
  squidBin: string;
  certgenBin: string;
  /** Also write Squid's access log to stdout. */
  accessLogStdout: boolean;
  /** Where the entrypoint may write generated files. */
  runtimeDir: string;
  /** Sibling proxies: an explicit list, or a count under a service. */
  peers?: string;
  peerCount?: number;
  peerService?: string;
}

/** Usage text for `--help`. */
export const USAGE = `Usage: cephaloproxy [--validate-only] [--help]

Starts Squid with the mounted /etc/squid/squid.conf (or the built-in
default), after checking the config, volumes and TLS files, and serves
/health and /ready.

  --validate-only  run every check, start nothing, exit 0 or 1
  --help           show this text

Environment:
  ${ENV_HEALTH_PORT}  health server port (default 8080)
  ${ENV_SQUID_PORT}  proxy port probed by /health when squid.conf names none
  ${ENV_LOG_LEVEL}  Squid debug level passed to -d (default 1)
  ${ENV_DRAIN_SECONDS}  seconds to let transfers finish on stop (25)
  ${ENV_ACCESS_LOG_STDOUT}  1 to copy the access log to stdout (0)
  ${ENV_PEERS}  comma-separated sibling proxies to share cache hits with
  ${ENV_PEER_COUNT}, ${ENV_PEER_SERVICE}  or: StatefulSet replicas and
      their headless service, siblings named <set>-<n>.<service>
`;

/**
 * Reads flags and environment.
 *
 * @throws {RangeError} for a value that is not a valid number or port,
 *   naming the variable.
 */
export function readSettings(
  argv: string[],
  env: (name: string) => string | undefined = Deno.env.get,
): Settings {
  const { values } = parseArgs({
    args: argv,
    options: {
      "validate-only": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });

  return {
    validateOnly: values["validate-only"] ?? false,
    help: values.help ?? false,
    healthPort: readPort(env, ENV_HEALTH_PORT, 8080),
    squidPort: readPort(env, ENV_SQUID_PORT, 3128),
    logLevel: readInteger(env, ENV_LOG_LEVEL, 1, 0, 9),
    drainSeconds: readInteger(env, ENV_DRAIN_SECONDS, 25, 0, 3600),
    configPath: env(ENV_CONFIG) ?? "/etc/squid/squid.conf",
    defaultConfigPath: env(ENV_DEFAULT_CONFIG) ??
      "/usr/share/cephaloproxy/squid.conf",
    sslCertDir: env(ENV_SSL_CERT_DIR) ?? "/etc/squid/ssl_cert",
    squidBin: env(ENV_SQUID_BIN) ?? "/usr/sbin/squid",
    certgenBin: env(ENV_CERTGEN_BIN) ??
      "/usr/lib/squid/security_file_certgen",
    accessLogStdout: readInteger(env, ENV_ACCESS_LOG_STDOUT, 0, 0, 1) === 1,
    runtimeDir: env(ENV_RUNTIME_DIR) ?? "/var/run/squid",
    peers: env(ENV_PEERS) || undefined,
    peerCount: readInteger(env, ENV_PEER_COUNT, 0, 0, 1000) || undefined,
    peerService: env(ENV_PEER_SERVICE) || undefined,
  };
}

function readPort(
  env: (name: string) => string | undefined,
  name: string,
  fallback: number,
): number {
  return readInteger(env, name, fallback, 1, 65535);
}

function readInteger(
  env: (name: string) => string | undefined,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const raw = env(name);
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) {
    throw new RangeError(
      `Invalid ${name}="${raw}": expected a whole number from ${min} ` +
        `to ${max}; fix or unset the environment variable`,
    );
  }
  return value;
}
