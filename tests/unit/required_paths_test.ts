import assert from "node:assert/strict";
import {
  cacheDirs,
  certDbDir,
  certDbSize,
  certgenChildren,
  logFilePath,
  pidFile,
  portTls,
  proxyAddress,
  type RequiredPath,
  requiredPaths,
  usesSslBump,
  writableDirOf,
} from "../../src/required_paths.ts";
import { readSquidConf } from "../../src/squid_conf.ts";
import { confFromLines, fixture, sanitized } from "./_helpers.ts";

const CONF = "/etc/squid/squid.conf";

Deno.test(
  "cacheDirs() reads type, path, size and L1/L2 of each cache_dir",
  sanitized({}),
  () => {
    const conf = confFromLines([
      "cache_dir ufs /var/spool/squid 250 16 256",
      "cache_dir aufs /cache/a 100",
      "cache_dir diskd /cache/d 300 32 512 Q1=72 Q2=64",
      "cache_dir rock /cache/rock 1000 max-size=32768",
      "cache_dir ufs",
      "cache_mem 64 MB",
    ]);

    const dirs = cacheDirs(conf);

    assert.deepEqual(
      dirs.map(({ type, path, sizeMb, directive }) => ({
        type,
        path,
        sizeMb,
        line: directive.line,
      })),
      [
        { type: "ufs", path: "/var/spool/squid", sizeMb: 250, line: 1 },
        { type: "aufs", path: "/cache/a", sizeMb: 100, line: 2 },
        { type: "diskd", path: "/cache/d", sizeMb: 300, line: 3 },
        { type: "rock", path: "/cache/rock", sizeMb: 1000, line: 4 },
      ],
    );
    assert.deepEqual(dirs.slice(0, 3).map(({ l1, l2 }) => [l1, l2]), [
      [16, 256],
      [16, 256],
      [32, 512],
    ]);
  },
);

Deno.test(
  "portTls() reads cert and key options and ssl-bump of each port",
  sanitized({}),
  async (t) => {
    const cases: [string, { cert?: string; key?: string; sslBump: boolean }][] =
      [
        ["http_port 3128", { sslBump: false }],
        [
          "http_port 3128 ssl-bump cert=/tls/ca.pem key=/tls/ca.key",
          { cert: "/tls/ca.pem", key: "/tls/ca.key", sslBump: true },
        ],
        [
          "http_port 3128 ssl-bump tls-cert=/tls/ca.pem tls-key=/tls/k.pem",
          { cert: "/tls/ca.pem", key: "/tls/k.pem", sslBump: true },
        ],
        [
          "https_port 3129 ssl-bump cert=/var/lib/squid/squid-ca.pem",
          { cert: "/var/lib/squid/squid-ca.pem", sslBump: true },
        ],
        [
          "https_port 3129 tls-cert=/tls/a=b.pem",
          { cert: "/tls/a=b.pem", sslBump: false },
        ],
        ["http_port 3128 ssl-bumped", { sslBump: false }],
      ];
    for (const [line, expected] of cases) {
      await t.step(line, () => {
        const [port] = portTls(confFromLines([line]));
        assert.deepEqual(
          { cert: port.cert, key: port.key, sslBump: port.sslBump },
          { cert: undefined, key: undefined, ...expected },
        );
        assert.equal(port.directive.line, 1);
      });
    }
  },
);

Deno.test(
  "portTls() lists http_port lines before https_port lines",
  sanitized({}),
  () => {
    const conf = confFromLines([
      "https_port 3129 cert=/tls/b.pem",
      "http_port 3128 cert=/tls/a.pem",
      "http_port 3130",
    ]);

    assert.deepEqual(portTls(conf).map((port) => port.directive.line), [
      2,
      3,
      1,
    ]);
  },
);

Deno.test(
  "usesSslBump() is true when any http_port or https_port bumps",
  sanitized({}),
  async (t) => {
    const cases: [string[], boolean][] = [
      [["http_port 3128"], false],
      [["http_port 3128", "https_port 3129 ssl-bump cert=/c.pem"], true],
      [["http_port 3128 ssl-bump cert=/c.pem"], true],
      [["http_port 3128 intercept", "https_port 3129 cert=/c.pem"], false],
      [["cache_mem 64 MB"], false],
    ];
    for (const [lines, expected] of cases) {
      await t.step(lines.join(" / "), () => {
        assert.equal(usesSslBump(confFromLines(lines)), expected);
      });
    }
  },
);

Deno.test(
  "proxyAddress() picks the first http_port reachable over loopback",
  sanitized({}),
  async (t) => {
    type Address = { hostname: string; port: number } | null | undefined;
    const cases: [string[], Address][] = [
      [["http_port 3128"], { hostname: "127.0.0.1", port: 3128 }],
      [["http_port 0.0.0.0:3128"], { hostname: "127.0.0.1", port: 3128 }],
      [["http_port 10.1.2.3:3129"], null],
      [
        ["http_port 10.1.2.3:3129", "http_port 127.0.0.1:3130"],
        { hostname: "127.0.0.1", port: 3130 },
      ],
      [["http_port [::]:3128"], { hostname: "127.0.0.1", port: 3128 }],
      [["http_port [::1]:8080"], null],
      [
        ["http_port 8080 ssl-bump cert=/c.pem", "http_port 3128"],
        { hostname: "127.0.0.1", port: 8080 },
      ],
      [["https_port 3129 cert=/c.pem"], undefined],
      [["cache_mem 64 MB"], undefined],
      [["http_port proxy.example:port"], null],
    ];
    for (const [lines, expected] of cases) {
      await t.step(lines.join(" / "), () => {
        assert.deepEqual(proxyAddress(confFromLines(lines)), expected);
      });
    }
  },
);

Deno.test(
  "certDbDir() and certDbSize() read -s and -M of sslcrtd_program",
  sanitized({}),
  () => {
    const conf = confFromLines([
      "http_port 3128",
      "sslcrtd_program /usr/libexec/squid/security_file_certgen " +
      "-s /var/lib/squid/ssl_db -M 4MB",
    ]);

    assert.deepEqual(certDbDir(conf), {
      path: "/var/lib/squid/ssl_db",
      access: "creatable-dir",
      directive: "sslcrtd_program",
      file: CONF,
      line: 2,
    });
    assert.equal(certDbSize(conf), "4MB");
  },
);

Deno.test(
  "certDbDir() and certDbSize() follow the last sslcrtd_program",
  sanitized({}),
  async (t) => {
    const certgen = "/usr/libexec/squid/security_file_certgen";
    const cases: [string[], string | undefined, string][] = [
      [[], undefined, "4MB"],
      [[`sslcrtd_program ${certgen}`], undefined, "4MB"],
      [[`sslcrtd_program ${certgen} -s`], undefined, "4MB"],
      [[`sslcrtd_program ${certgen} -M 16MB -s /db`], "/db", "16MB"],
      [
        [
          `sslcrtd_program ${certgen} -s /old -M 8MB`,
          `sslcrtd_program ${certgen} -s /new`,
        ],
        "/new",
        "4MB",
      ],
    ];
    for (const [lines, dir, size] of cases) {
      await t.step(lines.join(" / ") || "no sslcrtd_program", () => {
        const conf = confFromLines(["http_port 3128", ...lines]);
        assert.equal(certDbDir(conf)?.path, dir);
        assert.equal(certDbSize(conf), size);
      });
    }
  },
);

Deno.test(
  "pidFile() returns the last pid_filename unless it is none",
  sanitized({}),
  async (t) => {
    const cases: [string[], string | undefined][] = [
      [[], undefined],
      [["pid_filename none"], undefined],
      [["pid_filename /run/squid.pid"], "/run/squid.pid"],
      [["pid_filename /a.pid", "pid_filename /run/b.pid"], "/run/b.pid"],
    ];
    for (const [lines, path] of cases) {
      await t.step(lines.join(" / ") || "no pid_filename", () => {
        const pid = pidFile(confFromLines(["http_port 3128", ...lines]));
        assert.equal(pid?.path, path);
        if (pid) {
          assert.equal(pid.access, "runtime-file");
          assert.equal(pid.line, lines.length + 1);
        }
      });
    }
  },
);

Deno.test(
  "logFilePath() returns only destinations that are files",
  sanitized({}),
  async (t) => {
    const cases: [string | undefined, string | undefined][] = [
      [undefined, undefined],
      ["none", undefined],
      ["/dev/stdout", undefined],
      ["/dev/stderr", undefined],
      ["/dev/null", undefined],
      ["stdio:/dev/stdout", undefined],
      ["daemon:/dev/stderr", undefined],
      ["syslog:daemon.info", undefined],
      ["tcp://logs.example:514", undefined],
      ["udp://10.0.0.1:514", undefined],
      ["relative.log", undefined],
      ["stdio:/var/log/squid/access.log", "/var/log/squid/access.log"],
      ["daemon:/var/log/squid/access.log", "/var/log/squid/access.log"],
      ["/var/log/squid/cache.log", "/var/log/squid/cache.log"],
    ];
    for (const [destination, path] of cases) {
      await t.step(String(destination), () => {
        assert.equal(logFilePath(destination), path);
      });
    }
  },
);

Deno.test(
  "requiredPaths() lists every path with its directive, file and line",
  sanitized({ read: true }),
  () => {
    const file = fixture("required_paths/full.conf");
    const conf = readSquidConf(file);

    const at = (
      path: string,
      access: RequiredPath["access"],
      directive: string,
      line: number,
    ): RequiredPath => ({ path, access, directive, file, line });
    assert.deepEqual(requiredPaths(conf), [
      at("/var/spool/squid", "writable-dir", "cache_dir", 4),
      at("/var/spool/rock", "writable-dir", "cache_dir", 5),
      at("/var/lib/squid/ssl_db", "creatable-dir", "sslcrtd_program", 6),
      at("/var/log/squid/access.log", "writable-file", "access_log", 7),
      at("/var/log/squid/cache.log", "writable-file", "cache_log", 8),
      at("/var/log/squid/store.log", "writable-file", "cache_store_log", 9),
      at("/run/squid/squid.pid", "runtime-file", "pid_filename", 11),
      at("/var/cache/squid", "writable-dir", "coredump_dir", 12),
      at("/etc/squid/tls/ca.pem", "readable-file", "http_port", 1),
      at("/etc/squid/tls/ca.key", "readable-file", "http_port", 1),
      at("/etc/squid/tls/server.crt", "readable-file", "https_port", 3),
      at("/etc/squid/tls/server.key", "readable-file", "https_port", 3),
      at("/etc/squid/blocked.txt", "readable-file", "acl", 13),
    ]);
  },
);

Deno.test(
  "requiredPaths() is empty for a config that names no path",
  sanitized({}),
  () => {
    const conf = confFromLines([
      "http_port 3128",
      "access_log none",
      "cache_log /dev/stderr",
      "pid_filename none",
      "coredump_dir none",
    ]);

    assert.deepEqual(requiredPaths(conf), []);
  },
);

Deno.test(
  "writableDirOf() is the directory itself or the file's directory",
  sanitized({}),
  async (t) => {
    const cases: [RequiredPath["access"], string][] = [
      ["writable-dir", "/var/spool/squid"],
      ["creatable-dir", "/var/spool"],
      ["writable-file", "/var/spool"],
      ["readable-file", "/var/spool"],
    ];
    for (const [access, dir] of cases) {
      await t.step(access, () => {
        const path: RequiredPath = {
          path: "/var/spool/squid",
          access,
          directive: "cache_dir",
          file: CONF,
          line: 1,
        };
        assert.equal(writableDirOf(path), dir);
      });
    }
  },
);

Deno.test(
  "certgenChildren() reads sslcrtd_children, defaulting to Squid's 32",
  sanitized({}),
  () => {
    assert.equal(certgenChildren(confFromLines(["sslcrtd_children 5"])), 5);
    assert.equal(
      certgenChildren(confFromLines(["sslcrtd_children 8 startup=2 idle=1"])),
      8,
    );
    assert.equal(certgenChildren(confFromLines(["http_port 3128"])), 32);
  },
);
