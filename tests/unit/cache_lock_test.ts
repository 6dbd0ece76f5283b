import assert from "node:assert/strict";
import { join } from "node:path";
import {
  CacheInUseError,
  LOCK_FILE,
  lockCacheDirs,
} from "../../src/cache_lock.ts";
import { sanitized, throwsError } from "./_helpers.ts";

const PERMISSIONS = { read: true, write: true, sys: ["hostname" as const] };

/** Closes every lock file, releasing the locks. */
function release(files: Deno.FsFile[]): void {
  for (const file of files) file.close();
}

Deno.test(
  "lockCacheDirs() locks each directory and records the holder",
  sanitized(PERMISSIONS),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "cache-lock-test-" });
    try {
      Deno.mkdirSync(join(dir, "a"));
      Deno.mkdirSync(join(dir, "b"));
      Deno.writeTextFileSync(join(dir, "b", LOCK_FILE), "pid 1 on old-host\n");

      const held = lockCacheDirs([join(dir, "a"), join(dir, "b")]);
      try {
        assert.equal(held.length, 2);
        for (const name of ["a", "b"]) {
          assert.equal(
            Deno.readTextFileSync(join(dir, name, LOCK_FILE)),
            `pid ${Deno.pid} on ${Deno.hostname()}\n`,
          );
        }
      } finally {
        release(held);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "lockCacheDirs() refuses a directory another holder has locked",
  sanitized(PERMISSIONS),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "cache-lock-test-" });
    try {
      const [free, taken] = [join(dir, "free"), join(dir, "taken")];
      Deno.mkdirSync(free);
      Deno.mkdirSync(taken);
      const other = lockCacheDirs([taken]);
      try {
        const err = throwsError(
          () => lockCacheDirs([free, taken]),
          CacheInUseError,
        );
        assert.equal(
          err.message,
          `Cache directory "${taken}" is in use by another CephaloProxy ` +
            `(lock ${taken}/${LOCK_FILE} is held); give each container its ` +
            "own cache volume",
        );
        // The lock taken on the free directory before the failure is gone.
        release(lockCacheDirs([free]));
      } finally {
        release(other);
      }

      release(lockCacheDirs([taken]));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
