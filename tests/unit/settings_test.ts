import assert from "node:assert/strict";
import {
  ENV_ACCESS_LOG_STDOUT,
  ENV_CERTGEN_BIN,
  ENV_CONFIG,
  ENV_DEFAULT_CONFIG,
  ENV_DRAIN_SECONDS,
  ENV_HEALTH_PORT,
  ENV_LOG_LEVEL,
  ENV_RUNTIME_DIR,
  ENV_SQUID_BIN,
  ENV_SQUID_PORT,
  ENV_SSL_CERT_DIR,
  readSettings,
  type Settings,
  USAGE,
} from "../../src/settings.ts";
import { sanitized, throwsError } from "./_helpers.ts";

/** An environment holding only `vars`. */
function envOf(vars: Record<string, string> = {}) {
  return (name: string): string | undefined => vars[name];
}

Deno.test(
  "readSettings() falls back to the image's defaults",
  sanitized({}),
  () => {
    const settings = readSettings([], envOf());

    const expected: Partial<Settings> = {
      validateOnly: false,
      help: false,
      healthPort: 8080,
      squidPort: 3128,
      logLevel: 1,
      drainSeconds: 25,
      configPath: "/etc/squid/squid.conf",
      defaultConfigPath: "/usr/share/cephaloproxy/squid.conf",
      sslCertDir: "/etc/squid/ssl_cert",
      squidBin: "/usr/sbin/squid",
      certgenBin: "/usr/lib/squid/security_file_certgen",
      accessLogStdout: false,
      runtimeDir: "/var/run/squid",
    };
    const picked = Object.fromEntries(
      Object.keys(expected).map((
        key,
      ) => [key, settings[key as keyof Settings]]),
    );
    assert.deepEqual(picked, expected);
  },
);

Deno.test(
  "readSettings() takes each environment variable",
  sanitized({}),
  async (t) => {
    const cases: [string, string, keyof Settings, unknown][] = [
      [ENV_HEALTH_PORT, "9090", "healthPort", 9090],
      [ENV_SQUID_PORT, "65535", "squidPort", 65535],
      [ENV_SQUID_PORT, "1", "squidPort", 1],
      [ENV_LOG_LEVEL, "0", "logLevel", 0],
      [ENV_LOG_LEVEL, "9", "logLevel", 9],
      [ENV_DRAIN_SECONDS, "0", "drainSeconds", 0],
      [ENV_DRAIN_SECONDS, "3600", "drainSeconds", 3600],
      [ENV_CONFIG, "/srv/squid.conf", "configPath", "/srv/squid.conf"],
      [ENV_DEFAULT_CONFIG, "/d.conf", "defaultConfigPath", "/d.conf"],
      [ENV_SSL_CERT_DIR, "/srv/tls", "sslCertDir", "/srv/tls"],
      [ENV_SQUID_BIN, "/opt/squid", "squidBin", "/opt/squid"],
      [ENV_CERTGEN_BIN, "/opt/certgen", "certgenBin", "/opt/certgen"],
      [ENV_ACCESS_LOG_STDOUT, "1", "accessLogStdout", true],
      [ENV_ACCESS_LOG_STDOUT, "0", "accessLogStdout", false],
      [ENV_RUNTIME_DIR, "/tmp/run", "runtimeDir", "/tmp/run"],
      [ENV_HEALTH_PORT, "", "healthPort", 8080],
    ];
    for (const [name, value, field, expected] of cases) {
      await t.step(`${name}=${JSON.stringify(value)}`, () => {
        const settings = readSettings([], envOf({ [name]: value }));
        assert.deepEqual(settings[field], expected);
      });
    }
  },
);

Deno.test(
  "readSettings() rejects an out-of-range number, naming the variable",
  sanitized({}),
  async (t) => {
    const cases: [string, string, string][] = [
      [ENV_HEALTH_PORT, "0", "1 to 65535"],
      [ENV_HEALTH_PORT, "65536", "1 to 65535"],
      [ENV_SQUID_PORT, "http", "1 to 65535"],
      [ENV_SQUID_PORT, "3128.5", "1 to 65535"],
      [ENV_LOG_LEVEL, "10", "0 to 9"],
      [ENV_LOG_LEVEL, "-1", "0 to 9"],
      [ENV_DRAIN_SECONDS, "3601", "0 to 3600"],
      [ENV_ACCESS_LOG_STDOUT, "yes", "0 to 1"],
    ];
    for (const [name, value, range] of cases) {
      await t.step(`${name}=${value}`, () => {
        const err = throwsError(
          () => readSettings([], envOf({ [name]: value })),
          RangeError,
        );
        assert.equal(
          err.message,
          `Invalid ${name}="${value}": expected a whole number from ` +
            `${range}; fix or unset the environment variable`,
        );
      });
    }
  },
);

Deno.test(
  "readSettings() reads --validate-only and --help",
  sanitized({}),
  async (t) => {
    const cases: [string[], boolean, boolean][] = [
      [[], false, false],
      [["--validate-only"], true, false],
      [["--help"], false, true],
      [["-h"], false, true],
      [["--validate-only", "--help"], true, true],
    ];
    for (const [argv, validateOnly, help] of cases) {
      await t.step(argv.join(" ") || "no flags", () => {
        const settings = readSettings(argv, envOf());
        assert.deepEqual(
          { validateOnly: settings.validateOnly, help: settings.help },
          { validateOnly, help },
        );
      });
    }
  },
);

Deno.test(
  "readSettings() throws TypeError for an unknown flag or an argument",
  sanitized({}),
  async (t) => {
    const cases: [string[], string][] = [
      [["--validate"], "ERR_PARSE_ARGS_UNKNOWN_OPTION"],
      [["-x"], "ERR_PARSE_ARGS_UNKNOWN_OPTION"],
      [["squid.conf"], "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL"],
      [["--help=yes"], "ERR_PARSE_ARGS_INVALID_OPTION_VALUE"],
    ];
    for (const [argv, code] of cases) {
      await t.step(argv.join(" "), () => {
        const err = throwsError(() => readSettings(argv, envOf()), TypeError);
        assert.equal((err as TypeError & { code?: string }).code, code);
      });
    }
  },
);

Deno.test(
  "readSettings() reads the process environment by default",
  sanitized({ env: true }),
  () => {
    const previous = Deno.env.get(ENV_HEALTH_PORT);
    try {
      Deno.env.set(ENV_HEALTH_PORT, "9191");

      assert.equal(readSettings([]).healthPort, 9191);
    } finally {
      if (previous === undefined) Deno.env.delete(ENV_HEALTH_PORT);
      else Deno.env.set(ENV_HEALTH_PORT, previous);
    }
  },
);

Deno.test(
  "USAGE names the flags and environment variables",
  sanitized({}),
  () => {
    for (
      const word of [
        "--validate-only",
        "--help",
        ENV_HEALTH_PORT,
        ENV_SQUID_PORT,
        ENV_LOG_LEVEL,
        ENV_DRAIN_SECONDS,
        ENV_ACCESS_LOG_STDOUT,
      ]
    ) {
      assert.ok(USAGE.includes(word), `USAGE lacks ${word}`);
    }
  },
);
