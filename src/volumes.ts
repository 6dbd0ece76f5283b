/**
 * Checks the paths squid.conf needs before anything starts: directories
 * exist and take a write (tried for real, so read-only mounts are caught),
 * input files can be read. Each problem is one line naming the path, the
 * directive with its file and line, who we run as, the path's owner and
 * mode, and what to do.
 *
 * @module
 */

import { exists, isReadOnlyError, statOrUndefined } from "./_fs.ts";
import { dirname } from "node:path";
import type { RequiredPath } from "./required_paths.ts";

/** The directories the entrypoint's Deno permissions reach. */
export const ACCESSIBLE_ROOTS = [
  "/var",
  "/run",
  "/tmp",
  "/srv",
  "/mnt",
  "/cache",
  "/data",
];

/** Who the entrypoint runs as, for messages. */
export interface Identity {
  uid: number;
  gid: number;
}

/** Returns the process's UID and GID. */
export function currentIdentity(): Identity {
  return { uid: Deno.uid() ?? -1, gid: Deno.gid() ?? -1 };
}

/**
 * Checks every required path; returns one message per problem, empty when
 * all is well. A directory is checked once even when several directives
 * use it.
 */
export function checkPaths(
  paths: RequiredPath[],
  identity: Identity,
): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();

  for (const required of paths) {
    const key = `${required.access}:${targetOf(required)}`;
    if (seen.has(key)) continue;
    seen.add(key);

    const problem = checkPath(required, identity);
    if (problem) problems.push(problem);
  }
  return problems;
}

function targetOf(required: RequiredPath): string {
  switch (required.access) {
    case "writable-dir":
    case "readable-file":
      return required.path;
    case "writable-file":
    case "runtime-file":
      return dirname(required.path);
    case "creatable-dir":
      return required.path;
  }
}

function checkPath(required: RequiredPath, who: Identity): string | undefined {
  try {
    switch (required.access) {
      case "readable-file":
        return checkReadableFile(required, who);
      case "writable-dir":
        return checkWritableDir(required.path, required, who);
      case "writable-file":
        return checkWritableDir(dirname(required.path), required, who);
      case "runtime-file":
        return checkRuntimeDir(dirname(required.path), required, who);
      case "creatable-dir":
        return exists(required.path)
          ? checkWritableDir(required.path, required, who)
          : checkWritableDir(dirname(required.path), required, who);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotCapable)) throw err;
    return `Cannot use "${required.path}" (${origin(required)}): ` +
      `the entrypoint may only use paths under ${ACCESSIBLE_ROOTS.join(", ")}` +
      " and /etc/squid; move it under one of them";
  }
}

function checkReadableFile(
  required: RequiredPath,
  who: Identity,
): string | undefined {
  try {
    Deno.readFileSync(required.path);
    return undefined;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      return `Cannot read "${required.path}" (${origin(required)}): ` +
        "the file does not exist; mount it or fix the path in squid.conf";
    }
    if (err instanceof Deno.errors.PermissionDenied) {
      return `Cannot read "${required.path}" (${origin(required)}): ` +
        `permission denied for ${identityText(who)}, ${
          ownerText(required.path)
        }` +
        "; make it readable by group 0 or by that UID";
    }
    if (err instanceof Deno.errors.IsADirectory) {
      return `Cannot read "${required.path}" (${origin(required)}): ` +
        "it is a directory; point the directive at a file";
    }
    throw err;
  }
}

function checkWritableDir(
  dir: string,
  required: RequiredPath,
  who: Identity,
): string | undefined {
  const info = statOrUndefined(dir);
  if (!info) {
    return `Required directory "${dir}" (${origin(required)}) does not ` +
      "exist; mount a writable volume there or change the directive";
  }
  if (!info.isDirectory) {
    return `Required directory "${dir}" (${origin(required)}) is not a ` +
      "directory; mount a directory there";
  }

  const result = tryWrite(dir);
  if (result === "written") return undefined;
  const reason = result === "read-only"
    ? "the volume is mounted read-only; mount it read-write"
    : `permission denied for ${identityText(who)}, ${ownerText(dir)}; ` +
      "make it writable by group 0 (chgrp 0, chmod g+rwx) or run as its owner";
  return `Cannot write to "${dir}" (${origin(required)}): ${reason}`;
}

/**
 * The PID file's directory may be absent: the entrypoint creates it at
 * start, which needs a writable parent. The image has none because an
 * engine's tmpfs on a path the image lacks gets mode 1777 under Docker
 * and Podman alike, while on an existing directory it takes that
 * directory's mode, which Podman's copy of /run narrows to 0755.
 */
function checkRuntimeDir(
  dir: string,
  required: RequiredPath,
  who: Identity,
): string | undefined {
  if (exists(dir)) return checkWritableDir(dir, required, who);

  const parent = dirname(dir);
  const fix =
    "mount a writable volume (or tmpfs) there or change the directive";
  if (!statOrUndefined(parent)?.isDirectory) {
    return `Required directory "${dir}" (${origin(required)}) does not ` +
      `exist, nor does "${parent}" to create it in; ${fix}`;
  }
  const result = tryWrite(parent);
  if (result === "written") return undefined;
  const reason = result === "read-only"
    ? `"${parent}" is mounted read-only`
    : `permission denied in "${parent}" for ${identityText(who)}, ` +
      ownerText(parent);
  return `Cannot create "${dir}" (${origin(required)}): ${reason}; ${fix}`;
}

/** Creates and removes a probe file in `dir`, so read-only mounts show. */
function tryWrite(dir: string): "written" | "read-only" | "denied" {
  const probe = `${dir}/.cephaloproxy-write-test-${Deno.pid}`;
  try {
    Deno.writeFileSync(probe, new Uint8Array(), { createNew: true });
    Deno.removeSync(probe);
    return "written";
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) {
      Deno.removeSync(probe);
      return "written";
    }
    if (isReadOnlyError(err)) return "read-only";
    if (err instanceof Deno.errors.PermissionDenied) return "denied";
    throw err;
  }
}

function origin(required: RequiredPath): string {
  return `${required.directive} at ${required.file}:${required.line}`;
}

function identityText(who: Identity): string {
  return `UID ${who.uid} GID ${who.gid}`;
}

function ownerText(path: string): string {
  const info = Deno.statSync(path);
  const mode = ((info.mode ?? 0) & 0o7777).toString(8).padStart(4, "0");
  return `owned by ${info.uid}:${info.gid} with mode ${mode}`;
}
