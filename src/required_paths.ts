/**
 * Derives from a parsed squid.conf every path the proxy will read or
 * write, with the directive that asks for it. Nothing here touches the
 * filesystem; `volumes.ts` checks the result.
 *
 * @module
 */

import { dirname, isAbsolute, resolve } from "node:path";
import { args, type Directive, findAll, type SquidConf } from "./squid_conf.ts";

/** What the proxy needs from a path. */
export type Access =
  /** a directory that must exist and be writable */
  | "writable-dir"
  /** a directory whose parent must be writable if it is absent */
  | "creatable-dir"
  /** a file that must exist and be readable */
  | "readable-file"
  /** a file Squid creates or appends to: its directory must be writable */
  | "writable-file"
  /**
   * a file in a runtime directory (the PID file's): the entrypoint creates
   * the directory when it is absent, so then its parent must be writable
   */
  | "runtime-file";

/** One path a directive depends on. */
export interface RequiredPath {
  path: string;
  access: Access;
  /** The directive's name, e.g. `cache_dir`. */
  directive: string;
  file: string;
  line: number;
}

/** A `cache_dir` line: type, directory and size in MB. */
export interface CacheDir {
  type: string;
  path: string;
  sizeMb: number;
  l1: number;
  l2: number;
  directive: Directive;
}

/** The TLS files a listening port names. */
export interface PortTls {
  cert?: string;
  key?: string;
  sslBump: boolean;
  directive: Directive;
}

const LOG_DIRECTIVES = [
  "access_log",
  "cache_log",
  "cache_store_log",
  "icap_log",
];
const PORT_DIRECTIVES = ["http_port", "https_port"];
const NOT_A_FILE = new Set(["none", "/dev/stdout", "/dev/stderr", "/dev/null"]);

/** Returns every `cache_dir` with a directory; Squid reports the rest. */
export function cacheDirs(conf: SquidConf): CacheDir[] {
  return findAll(conf, "cache_dir")
    .filter((directive) => args(directive).length >= 2)
    .map((directive) => {
      const [type, path, size, l1, l2] = args(directive);
      return {
        type,
        path: resolve(path ?? ""),
        sizeMb: Number(size),
        l1: Number(l1 ?? 16),
        l2: Number(l2 ?? 256),
        directive,
      };
    });
}

/** The `cache_mem` setting in bytes (Squid's default is 256 MB). */
export function cacheMemBytes(conf: SquidConf): number {
  const directive = findAll(conf, "cache_mem").at(-1);
  const [amount, unit = "bytes"] = directive ? args(directive) : ["256", "MB"];
  const scale: Record<string, number> = {
    bytes: 1,
    kb: 1024,
    mb: 1024 ** 2,
    gb: 1024 ** 3,
  };
  return Number(amount) * (scale[unit.toLowerCase()] ?? 1);
}

/** Returns the TLS options of each `http_port` and `https_port`. */
export function portTls(conf: SquidConf): PortTls[] {
  return PORT_DIRECTIVES.flatMap((name) => findAll(conf, name)).map(
    (directive) => {
      const options = args(directive).slice(1);
      const value = (...keys: string[]) => {
        for (const option of options) {
          const [key, ...rest] = option.split("=");
          const value = rest.join("=");
          if (keys.includes(key) && value !== "") return value;
        }
        return undefined;
      };
      return {
        cert: value("tls-cert", "cert"),
        key: value("tls-key", "key"),
        sslBump: options.includes("ssl-bump"),
        directive,
      };
    },
  );
}

/** Whether any listening port bumps TLS. */
export function usesSslBump(conf: SquidConf): boolean {
  return portTls(conf).some((port) => port.sslBump);
}

/** Hosts an `http_port` may name and still be reached over loopback. */
const LOOPBACK_REACHABLE = new Set([
  "",
  "0.0.0.0",
  "::",
  "127.0.0.1",
  "localhost",
]);

/**
 * Where the health checks reach the proxy: the first `http_port` that
 * listens on a wildcard or loopback address, as 127.0.0.1:PORT. Undefined
 * when there is no `http_port`; `null` when every one is bound elsewhere.
 */
export function proxyAddress(
  conf: SquidConf,
): { hostname: string; port: number } | null | undefined {
  const ports = findAll(conf, "http_port");
  if (ports.length === 0) return undefined;
  for (const directive of ports) {
    const match = /^(?:\[?([^\]]*?)\]?:)?(\d+)$/.exec(args(directive)[0] ?? "");
    if (match && LOOPBACK_REACHABLE.has(match[1] ?? "")) {
      return { hostname: "127.0.0.1", port: Number(match[2]) };
    }
  }
  return null;
}

/** The cert DB directory from `sslcrtd_program ... -s DIR`. */
export function certDbDir(conf: SquidConf): RequiredPath | undefined {
  const directive = findAll(conf, "sslcrtd_program").at(-1);
  if (!directive) return undefined;
  const words = args(directive);
  const at = words.indexOf("-s");
  if (at === -1 || !words[at + 1]) return undefined;
  return required(words[at + 1], "creatable-dir", directive);
}

/** The size given to `sslcrtd_program ... -M SIZE`, default 4MB. */
export function certDbSize(conf: SquidConf): string {
  const directive = findAll(conf, "sslcrtd_program").at(-1);
  const words = directive ? args(directive) : [];
  const at = words.indexOf("-M");
  return (at === -1 ? undefined : words[at + 1]) ?? "4MB";
}

/** The first value of `sslcrtd_children` (Squid's default is 32). */
export function certgenChildren(conf: SquidConf): number {
  const directive = findAll(conf, "sslcrtd_children").at(-1);
  const value = Number(directive ? args(directive)[0] : 32);
  return Number.isInteger(value) ? value : 32;
}

/** The path Squid writes its PID to, or undefined for `none`. */
export function pidFile(conf: SquidConf): RequiredPath | undefined {
  const directive = findAll(conf, "pid_filename").at(-1);
  if (!directive) return undefined;
  const path = args(directive)[0];
  if (!path || path === "none") return undefined;
  return required(path, "runtime-file", directive);
}

/** Lists every path the config needs, in file order per kind. */
export function requiredPaths(conf: SquidConf): RequiredPath[] {
  const paths: RequiredPath[] = [];

  for (const dir of cacheDirs(conf)) {
    paths.push(required(dir.path, "writable-dir", dir.directive));
  }

  const certDb = certDbDir(conf);
  if (certDb) paths.push(certDb);

  for (const directive of LOG_DIRECTIVES.flatMap((n) => findAll(conf, n))) {
    const path = logFilePath(args(directive)[0]);
    if (path) paths.push(required(path, "writable-file", directive));
  }

  const pid = pidFile(conf);
  if (pid) paths.push(pid);

  for (const directive of findAll(conf, "coredump_dir")) {
    const path = args(directive)[0];
    if (path && path !== "none") {
      paths.push(required(path, "writable-dir", directive));
    }
  }

  for (const port of portTls(conf)) {
    for (const path of [port.cert, port.key]) {
      if (path) paths.push(required(path, "readable-file", port.directive));
    }
  }

  for (const directive of findAll(conf, "acl")) {
    for (const token of directive.tokens.slice(2)) {
      if (token.quoted && isAbsolute(token.text)) {
        paths.push(required(token.text, "readable-file", directive));
      }
    }
  }

  return paths;
}

/**
 * Returns the file behind a log destination, or undefined when it is not
 * a file on a volume (`none`, syslog, network, the standard streams).
 */
export function logFilePath(destination: string | undefined) {
  if (!destination) return undefined;
  const match = /^(stdio|daemon):(.*)$/.exec(destination);
  if (!match && /^[a-z]+:/.test(destination)) return undefined;
  const path = match ? match[2] : destination;
  if (NOT_A_FILE.has(path) || !isAbsolute(path)) return undefined;
  return path;
}

function required(
  path: string,
  access: Access,
  directive: Directive,
): RequiredPath {
  return {
    path: resolve(path),
    access,
    directive: directive.name,
    file: directive.file,
    line: directive.line,
  };
}

/** The directory that must be writable for `required`. */
export function writableDirOf(path: RequiredPath): string {
  return path.access === "writable-dir" ? path.path : dirname(path.path);
}
