/**
 * Helpers shared by the unit tests; the leading underscore marks a private
 * module, and `deno test` collects only `*_test.ts` files.
 *
 * @module
 */

import { rejects, throws } from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Level, setLineSink } from "../../src/log.ts";
import { type SquidConf, tokenize } from "../../src/squid_conf.ts";

/** The directory of the unit-test fixtures. */
export const FIXTURES = fileURLToPath(
  new URL("../fixtures/unit/", import.meta.url),
);

/** Returns the path of a file under tests/fixtures/unit/. */
export function fixture(name: string): string {
  return join(FIXTURES, name);
}

/**
 * Options for `Deno.test`: the given permissions and every sanitizer on.
 * Deno 2.8 and later leave the op and resource sanitizers off unless asked.
 */
export function sanitized(
  permissions: Deno.PermissionOptionsObject,
): Omit<Deno.TestDefinition, "fn" | "name"> {
  return {
    permissions,
    sanitizeOps: true,
    sanitizeResources: true,
    sanitizeExit: true,
  };
}

/** An error class, for the expectation of a throw. */
// deno-lint-ignore no-explicit-any
export type ErrorClass<E extends Error> = abstract new (...args: any[]) => E;

/** Returns the error `fn` throws, failing unless it is a `type`. */
export function throwsError<E extends Error>(
  fn: () => unknown,
  type: ErrorClass<E>,
): E {
  let caught: unknown;
  throws(() => {
    try {
      fn();
    } catch (err) {
      caught = err;
      throw err;
    }
  }, type);
  return caught as E;
}

/** Returns the error `fn` rejects with, failing unless it is a `type`. */
export async function rejectsError<E extends Error>(
  fn: () => Promise<unknown>,
  type: ErrorClass<E>,
): Promise<E> {
  let caught: unknown;
  await rejects(async () => {
    try {
      await fn();
    } catch (err) {
      caught = err;
      throw err;
    }
  }, type);
  return caught as E;
}

/** Writes each `relative path -> text` entry under `dir`, making parents. */
export function writeFiles(dir: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) {
    const path = join(dir, name);
    Deno.mkdirSync(dirname(path), { recursive: true });
    Deno.writeTextFileSync(path, text);
  }
}

/** A log line as the sink received it. */
export interface LoggedLine {
  level: Level;
  line: string;
}

/**
 * Sends log lines to an array until `restore()` is called; call it in a
 * `finally` so the previous sink comes back even when a test fails.
 */
export function captureLog(): { lines: LoggedLine[]; restore(): void } {
  const lines: LoggedLine[] = [];
  const previous = setLineSink((level, line) => lines.push({ level, line }));
  return { lines, restore: () => setLineSink(previous) };
}

/**
 * Polls `condition` every few milliseconds until it holds.
 *
 * @throws {Error} naming `what` when it still fails after `timeoutMs`.
 */
export async function waitFor(
  what: string,
  condition: () => boolean,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = AbortSignal.timeout(timeoutMs);
  while (!condition()) {
    if (deadline.aborted) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Whether `path` exists, without throwing for an absent one. */
export function pathExists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** The names in a directory, sorted. */
export function listDir(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((entry) => entry.name).sort();
}

/**
 * Builds a parsed config from directive lines without touching the disk;
 * line numbers count from 1 as if `lines` were the file.
 */
export function confFromLines(
  lines: string[],
  file = "/etc/squid/squid.conf",
): SquidConf {
  const directives = lines.map((text, i) => {
    const [name, ...tokens] = tokenize(text, file, i + 1);
    return { name: name.text, tokens, file, line: i + 1 };
  });
  return { path: file, directives, files: [file] };
}

/**
 * Mounts a read-only tmpfs at `dir` (which must exist) and returns an
 * unmount function, or undefined when this machine does not allow it
 * (not root, or no mount privilege in a container).
 */
export async function mountReadOnly(
  dir: string,
): Promise<(() => Promise<void>) | undefined> {
  let mount: Deno.CommandOutput;
  try {
    mount = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "ro,size=64k", "cephaloproxy-test", dir],
      stdout: "null",
      stderr: "null",
    }).output();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  if (!mount.success) return undefined;
  return async () => {
    const umount = await new Deno.Command("umount", {
      args: [dir],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!umount.success) {
      throw new Error(
        `Cannot unmount "${dir}": ${new TextDecoder().decode(umount.stderr)}`,
      );
    }
  };
}
