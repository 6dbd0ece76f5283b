/** Small filesystem helpers shared by the entrypoint's modules. */

/** Returns the path's info, or undefined when it does not exist. */
export function statOrUndefined(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.statSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    // A path through a regular file ("/etc/squid/squid.conf/x").
    if (err instanceof Deno.errors.NotADirectory) return undefined;
    throw err;
  }
}

/** Whether the path exists (any kind of file). */
export function exists(path: string): boolean {
  return statOrUndefined(path) !== undefined;
}

/** Whether the path is a regular file. */
export function isFile(path: string): boolean {
  return statOrUndefined(path)?.isFile ?? false;
}

/** Whether the path is a directory. */
export function isDirectory(path: string): boolean {
  return statOrUndefined(path)?.isDirectory ?? false;
}

/**
 * The mode of directories the entrypoint creates: writable by group 0 as
 * well, like the image's state directories, because OpenShift runs an
 * arbitrary UID whose only tie to the files is group 0.
 */
export const STATE_DIR_MODE = 0o775;

/**
 * Creates one directory (not its parents) with `mode`, which the umask
 * would otherwise narrow. Returns false when it already existed.
 */
export function createDirIfAbsent(path: string, mode: number): boolean {
  try {
    Deno.mkdirSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) return false;
    throw err;
  }
  Deno.chmodSync(path, mode);
  return true;
}

/** Removes a file or directory tree; absent is fine. */
export function removeIfPresent(path: string): void {
  try {
    Deno.removeSync(path, { recursive: true });
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

/** Whether a write failed because the filesystem is mounted read-only. */
export function isReadOnlyError(err: unknown): boolean {
  return err instanceof Error && (err as { code?: string }).code === "EROFS";
}
