import assert from "node:assert/strict";
import { join } from "node:path";
import type { Access, RequiredPath } from "../../src/required_paths.ts";
import {
  ACCESSIBLE_ROOTS,
  checkPaths,
  type Identity,
} from "../../src/volumes.ts";
import { listDir, mountReadOnly, sanitized, writeFiles } from "./_helpers.ts";

const CONF = "/etc/squid/squid.conf";
const ROOT: Identity = { uid: 0, gid: 0 };

function required(
  path: string,
  access: Access,
  directive = "cache_dir",
  line = 1,
): RequiredPath {
  return { path, access, directive, file: CONF, line };
}

Deno.test(
  "checkPaths() finds no problem when every path is usable",
  sanitized({ read: true, write: true }),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "volumes-test-" });
    try {
      writeFiles(dir, { "tls/ca.pem": "cert", "cache/.keep": "" });
      Deno.mkdirSync(join(dir, "logs"));
      Deno.mkdirSync(join(dir, "ssl_db"));

      const problems = checkPaths([
        required(join(dir, "cache"), "writable-dir"),
        required(join(dir, "logs/access.log"), "writable-file", "access_log"),
        required(join(dir, "tls/ca.pem"), "readable-file", "http_port"),
        required(join(dir, "ssl_db"), "creatable-dir", "sslcrtd_program"),
        required(join(dir, "new_db"), "creatable-dir", "sslcrtd_program"),
        required(join(dir, "logs/squid.pid"), "runtime-file", "pid_filename"),
        required(join(dir, "run/squid.pid"), "runtime-file", "pid_filename"),
      ], ROOT);

      assert.deepEqual(problems, []);
      assert.deepEqual(listDir(join(dir, "cache")), [".keep"]);
      assert.deepEqual(listDir(join(dir, "logs")), []);
      assert.deepEqual(listDir(dir), ["cache", "logs", "ssl_db", "tls"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "checkPaths() explains each unusable path with its directive and line",
  sanitized({ read: true, write: true }),
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "volumes-test-" });
    try {
      writeFiles(dir, { "file": "not a directory" });
      Deno.mkdirSync(join(dir, "tls"));
      const cases: [string, RequiredPath, string][] = [
        [
          "missing cache directory",
          required(join(dir, "spool"), "writable-dir", "cache_dir", 12),
          `Required directory "${dir}/spool" (cache_dir at ${CONF}:12) ` +
          "does not exist; mount a writable volume there or change the " +
          "directive",
        ],
        [
          "file where a directory is expected",
          required(join(dir, "file"), "writable-dir", "coredump_dir", 3),
          `Required directory "${dir}/file" (coredump_dir at ${CONF}:3) ` +
          "is not a directory; mount a directory there",
        ],
        [
          "log file in a missing directory",
          required(join(dir, "logs/cache.log"), "writable-file", "cache_log"),
          `Required directory "${dir}/logs" (cache_log at ${CONF}:1) does ` +
          "not exist; mount a writable volume there or change the directive",
        ],
        [
          "cert DB whose parent is missing",
          required(join(dir, "lib/ssl_db"), "creatable-dir", "sslcrtd_program"),
          `Required directory "${dir}/lib" (sslcrtd_program at ${CONF}:1) ` +
          "does not exist; mount a writable volume there or change the " +
          "directive",
        ],
        [
          "PID file whose directory and its parent are missing",
          required(
            join(dir, "run/squid/squid.pid"),
            "runtime-file",
            "pid_filename",
            5,
          ),
          `Required directory "${dir}/run/squid" (pid_filename at ${CONF}:5) ` +
          `does not exist, nor does "${dir}/run" to create it in; mount a ` +
          "writable volume (or tmpfs) there or change the directive",
        ],
        [
          "missing readable file",
          required(join(dir, "tls/ca.pem"), "readable-file", "http_port", 7),
          `Cannot read "${dir}/tls/ca.pem" (http_port at ${CONF}:7): the ` +
          "file does not exist; mount it or fix the path in squid.conf",
        ],
        [
          "directory where a file is expected",
          required(join(dir, "tls"), "readable-file", "acl", 9),
          `Cannot read "${dir}/tls" (acl at ${CONF}:9): it is a directory; ` +
          "point the directive at a file",
        ],
      ];
      for (const [name, path, message] of cases) {
        await t.step(name, () => {
          assert.deepEqual(checkPaths([path], ROOT), [message]);
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "checkPaths() reports a directory shared by several directives once",
  sanitized({ read: true, write: true }),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "volumes-test-" });
    try {
      const logs = join(dir, "logs");

      const problems = checkPaths([
        required(join(logs, "access.log"), "writable-file", "access_log", 4),
        required(join(logs, "cache.log"), "writable-file", "cache_log", 5),
        required(join(dir, "spool"), "writable-dir", "cache_dir", 6),
        required(join(dir, "spool"), "writable-dir", "coredump_dir", 7),
      ], ROOT);

      assert.deepEqual(problems, [
        `Required directory "${logs}" (access_log at ${CONF}:4) does not ` +
        "exist; mount a writable volume there or change the directive",
        `Required directory "${dir}/spool" (cache_dir at ${CONF}:6) does not ` +
        "exist; mount a writable volume there or change the directive",
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "checkPaths() names the allowed roots for a path outside the permissions",
  // Deno's permission check throws NotCapable, as in the image where the
  // entrypoint may read and write only under ACCESSIBLE_ROOTS.
  sanitized({ read: false, write: false }),
  () => {
    const problems = checkPaths([
      required("/opt/cache", "writable-dir", "cache_dir", 2),
      required("/opt/tls/ca.pem", "readable-file", "http_port", 3),
    ], ROOT);

    const roots = ACCESSIBLE_ROOTS.join(", ");
    assert.deepEqual(problems, [
      `Cannot use "/opt/cache" (cache_dir at ${CONF}:2): the entrypoint ` +
      `may only use paths under ${roots} and /etc/squid; move it under ` +
      "one of them",
      `Cannot use "/opt/tls/ca.pem" (http_port at ${CONF}:3): the ` +
      `entrypoint may only use paths under ${roots} and /etc/squid; move ` +
      "it under one of them",
    ]);
  },
);

Deno.test(
  "checkPaths() reports a read-only volume, also under an absent PID directory",
  sanitized({ read: true, write: true, run: ["mount", "umount"] }),
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "volumes-test-" });
    try {
      const volume = join(dir, "spool");
      Deno.mkdirSync(volume);
      const unmount = await mountReadOnly(volume);
      await t.step({
        name: "on a read-only tmpfs",
        // Mounting needs root with CAP_SYS_ADMIN, as on the CI machine.
        ignore: !unmount,
        fn: async () => {
          try {
            assert.deepEqual(
              checkPaths([required(volume, "writable-dir", "cache_dir", 4)], {
                uid: 1000,
                gid: 0,
              }),
              [
                `Cannot write to "${volume}" (cache_dir at ${CONF}:4): the ` +
                "volume is mounted read-only; mount it read-write",
              ],
            );
            const pid = join(volume, "squid", "squid.pid");
            assert.deepEqual(
              checkPaths([required(pid, "runtime-file", "pid_filename", 5)], {
                uid: 1000,
                gid: 0,
              }),
              [
                `Cannot create "${volume}/squid" (pid_filename at ${CONF}:5): ` +
                `"${volume}" is mounted read-only; mount a writable volume ` +
                "(or tmpfs) there or change the directive",
              ],
            );
          } finally {
            await unmount?.();
          }
        },
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "checkPaths() reports a directory the process may not write to",
  // As root, mode bits cannot deny a write; the immutable attribute can
  // (EPERM), which reaches the same PermissionDenied branch.
  sanitized({ read: true, write: true, run: ["chattr"] }),
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "volumes-test-" });
    const locked = join(dir, "locked");
    try {
      Deno.mkdirSync(locked, { mode: 0o750 });
      Deno.chmodSync(locked, 0o750);
      const immutable = await chattr("+i", locked);
      await t.step({
        name: "on an immutable directory",
        // chattr needs root and a filesystem with inode flags (not tmpfs).
        ignore: !immutable,
        fn: () => {
          const info = Deno.statSync(locked);
          assert.deepEqual(
            checkPaths([required(locked, "writable-dir", "cache_dir", 8)], {
              uid: 1234,
              gid: 0,
            }),
            [
              `Cannot write to "${locked}" (cache_dir at ${CONF}:8): ` +
              `permission denied for UID 1234 GID 0, owned by ` +
              `${info.uid}:${info.gid} with mode 0750; make it writable by ` +
              "group 0 (chgrp 0, chmod g+rwx) or run as its owner",
            ],
          );
        },
      });
    } finally {
      await chattr("-i", locked);
      await Deno.remove(dir, { recursive: true });
    }
  },
);

/** Sets or clears an inode flag; false when the machine does not allow it. */
async function chattr(flag: string, path: string): Promise<boolean> {
  try {
    const output = await new Deno.Command("chattr", {
      args: [flag, path],
      stdout: "null",
      stderr: "null",
    }).output();
    return output.success;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}
