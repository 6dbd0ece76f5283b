/**
 * One container per cache directory. Squid does not lock its `ufs`-family
 * cache directories, so two proxies on one volume would corrupt each
 * other's swap state. The entrypoint takes an exclusive `flock` on a file
 * in each cache directory and holds it for its lifetime; the kernel drops
 * it when the process dies, so a killed container never blocks the next
 * start. Works for local and bind-mounted volumes on one host; on network
 * filesystems it is only as good as their lock support.
 *
 * @module
 */

import { join } from "node:path";

/** The lock file's name inside each cache directory. */
export const LOCK_FILE = ".cephaloproxy.lock";

/** Thrown when another process holds a cache directory. */
export class CacheInUseError extends Error {
  override name = "CacheInUseError";
}

/**
 * Locks every directory; returns the open lock files, which must stay
 * open while Squid runs.
 *
 * @throws {CacheInUseError} naming the first directory already locked.
 */
export function lockCacheDirs(dirs: string[]): Deno.FsFile[] {
  const held: Deno.FsFile[] = [];
  for (const dir of dirs) {
    const path = join(dir, LOCK_FILE);
    const file = Deno.openSync(path, { read: true, write: true, create: true });
    if (!file.tryLockSync(true)) {
      file.close();
      for (const other of held) other.close();
      throw new CacheInUseError(
        `Cache directory "${dir}" is in use by another CephaloProxy ` +
          `(lock ${path} is held); give each container its own cache volume`,
      );
    }
    const owner = `pid ${Deno.pid} on ${Deno.hostname()}\n`;
    file.truncateSync(0);
    file.writeSync(new TextEncoder().encode(owner));
    held.push(file);
  }
  return held;
}
