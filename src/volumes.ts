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

  const probe = `${dir}/.cephaloproxy-write-test-${Deno.pid}`;
  try {
    Deno.writeFileSync(probe, new Uint8Array(), { createNew: true });
    Deno.removeSync(probe);
    return undefined;
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) {
      Deno.removeSync(probe);
      return undefined;
    }
    const readOnly = isReadOnlyError(err);
    if (!readOnly && !(err instanceof Deno.errors.PermissionDenied)) throw err;
    const reason = readOnly
      ? "the volume is mounted read-only; mount it read-write"
      : `permission denied for ${identityText(who)}, ${ownerText(dir)}; ` +
        "make it writable by group 0 (chgrp 0, chmod g+rwx) or run as its owner";
    return `Cannot write to "${dir}" (${origin(required)}): ${reason}`;
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
