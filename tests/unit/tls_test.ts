import assert from "node:assert/strict";
import { join } from "node:path";
import { portTls } from "../../src/required_paths.ts";
import {
  checkTlsPair,
  LEGACY_MERGED_PEM,
  loadTlsPairs,
  TlsError,
  type TlsPair,
  writeMergedPem,
} from "../../src/tls.ts";
import {
  confFromLines,
  listDir,
  mountReadOnly,
  pathExists,
  sanitized,
  throwsError,
} from "./_helpers.ts";

const ORIGIN = "http_port at /etc/squid/squid.conf:1";
const PERMISSIONS = { read: true, write: true, run: ["openssl"] };

/** Runs the host's openssl in `dir`; throws with its output on failure. */
async function openssl(dir: string, ...args: string[]): Promise<void> {
  const output = await new Deno.Command("openssl", {
    args,
    cwd: dir,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) {
    const text = new TextDecoder().decode(output.stderr);
    throw new Error(`openssl ${args.join(" ")} failed: ${text}`);
  }
}

/** Makes a P-256 self-signed certificate and its unencrypted key. */
async function selfSigned(dir: string, name: string, ca: boolean) {
  await openssl(
    dir,
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.crt`,
    "-days",
    "30",
    "-subj",
    `/CN=CephaloProxy test ${name}`,
    "-addext",
    `basicConstraints=critical,CA:${ca ? "TRUE" : "FALSE"}`,
  );
}

/**
 * Makes, in `dir`: ca.crt/ca.key (a CA), leaf.crt/leaf.key (not a CA),
 * other.key, the CA key encrypted as PKCS#8 (ca-pkcs8.key) and in the
 * legacy form (ca-legacy.key), the CA key in the traditional unencrypted
 * form (ca-ec.key) and expired.crt, a CA valid only in 2020 for ca.key.
 */
async function makeTlsFiles(dir: string): Promise<void> {
  await selfSigned(dir, "ca", true);
  await selfSigned(dir, "leaf", false);
  await openssl(
    dir,
    "genpkey",
    "-algorithm",
    "EC",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-out",
    "other.key",
  );
  await openssl(
    dir,
    "pkey",
    "-in",
    "ca.key",
    "-aes128",
    "-passout",
    "pass:secret",
    "-out",
    "ca-pkcs8.key",
  );
  await openssl(
    dir,
    "ec",
    "-in",
    "ca.key",
    "-aes128",
    "-passout",
    "pass:secret",
    "-out",
    "ca-legacy.key",
  );
  await openssl(dir, "ec", "-in", "ca.key", "-out", "ca-ec.key");

  // An expired CA needs explicit dates, which only "openssl ca" takes in
  // OpenSSL 3.0 ("x509 -not_after" arrived in 3.4).
  Deno.mkdirSync(join(dir, "db"));
  Deno.writeTextFileSync(join(dir, "db/index.txt"), "");
  Deno.writeTextFileSync(join(dir, "db/serial"), "01\n");
  Deno.writeTextFileSync(
    join(dir, "ca.cnf"),
    [
      "[ca]",
      "default_ca = test_ca",
      "[test_ca]",
      "database = db/index.txt",
      "new_certs_dir = db",
      "serial = db/serial",
      "default_md = sha256",
      "policy = any",
      "x509_extensions = ext",
      "[any]",
      "commonName = supplied",
      "[ext]",
      "basicConstraints = critical,CA:TRUE",
      "",
    ].join("\n"),
  );
  await openssl(
    dir,
    "req",
    "-new",
    "-key",
    "ca.key",
    "-subj",
    "/CN=CephaloProxy expired",
    "-out",
    "expired.csr",
  );
  await openssl(
    dir,
    "ca",
    "-batch",
    "-config",
    "ca.cnf",
    "-selfsign",
    "-keyfile",
    "ca.key",
    "-in",
    "expired.csr",
    "-startdate",
    "20200101000000Z",
    "-enddate",
    "20201231000000Z",
    "-out",
    "expired.crt",
  );
}

/** Reads a pair from two files of `dir`. */
function pairOf(dir: string, cert: string, key: string): TlsPair {
  const certPath = join(dir, cert);
  const keyPath = join(dir, key);
  return {
    certPath,
    certPem: Deno.readTextFileSync(certPath),
    keyPath,
    keyPem: Deno.readTextFileSync(keyPath),
    origin: ORIGIN,
  };
}

Deno.test(
  "checkTlsPair() accepts a matching CA certificate and key",
  sanitized(PERMISSIONS),
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "tls-test-" });
    try {
      await makeTlsFiles(dir);
      Deno.writeTextFileSync(
        join(dir, "merged.pem"),
        Deno.readTextFileSync(join(dir, "ca.crt")) +
          Deno.readTextFileSync(join(dir, "ca.key")),
      );
      const cases: [string, string, string][] = [
        ["PKCS#8 key", "ca.crt", "ca.key"],
        ["traditional EC key", "ca.crt", "ca-ec.key"],
        ["certificate and key in one file", "merged.pem", "merged.pem"],
      ];
      for (const [name, cert, key] of cases) {
        await t.step(name, () => {
          assert.deepEqual(checkTlsPair(pairOf(dir, cert, key)), []);
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "checkTlsPair() rejects unusable files, naming the file and the fix",
  sanitized(PERMISSIONS),
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "tls-test-" });
    try {
      await makeTlsFiles(dir);
      Deno.writeTextFileSync(join(dir, "garbage.crt"), "not a certificate\n");
      Deno.writeTextFileSync(
        join(dir, "broken.crt"),
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n" +
          "-----END CERTIFICATE-----\n",
      );
      Deno.writeTextFileSync(
        join(dir, "broken.key"),
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n" +
          "-----END PRIVATE KEY-----\n",
      );
      const cases: [string, string, string, string][] = [
        [
          "mismatched key",
          "ca.crt",
          "other.key",
          `Certificate "${dir}/ca.crt" and key "${dir}/other.key" do not ` +
          `match (${ORIGIN}); mount the key that belongs to the certificate`,
        ],
        [
          "encrypted PKCS#8 key",
          "ca.crt",
          "ca-pkcs8.key",
          `The private key in "${dir}/ca-pkcs8.key" (${ORIGIN}) is ` +
          "encrypted; Squid cannot ask for a passphrase: decrypt it with " +
          '"openssl pkey -in KEY -out KEY.plain" and mount that',
        ],
        [
          "encrypted legacy key",
          "ca.crt",
          "ca-legacy.key",
          `The private key in "${dir}/ca-legacy.key" (${ORIGIN}) is ` +
          "encrypted; Squid cannot ask for a passphrase: decrypt it with " +
          '"openssl pkey -in KEY -out KEY.plain" and mount that',
        ],
        [
          "certificate file without a certificate",
          "garbage.crt",
          "ca.key",
          `No certificate in "${dir}/garbage.crt" (${ORIGIN}): expected a ` +
          '"BEGIN CERTIFICATE" PEM block; mount the CA certificate there',
        ],
        [
          "certificate that does not parse",
          "broken.crt",
          "ca.key",
          `Cannot parse the certificate in "${dir}/broken.crt" (${ORIGIN}); ` +
          "replace it with a valid PEM certificate",
        ],
        [
          "key file without a key",
          "ca.crt",
          "ca.crt",
          `No private key in "${dir}/ca.crt" (${ORIGIN}): expected a ` +
          '"BEGIN ... PRIVATE KEY" PEM block; mount the key there',
        ],
        [
          "key that does not parse",
          "ca.crt",
          "broken.key",
          `Cannot parse the private key in "${dir}/broken.key" (${ORIGIN}); ` +
          "replace it with an unencrypted PEM key",
        ],
      ];
      for (const [name, cert, key, message] of cases) {
        await t.step(name, () => {
          const err = throwsError(
            () => checkTlsPair(pairOf(dir, cert, key)),
            TlsError,
          );
          assert.equal(err.name, "TlsError");
          assert.equal(err.message, message);
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "checkTlsPair() warns about a certificate that is not a CA",
  sanitized(PERMISSIONS),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "tls-test-" });
    try {
      await makeTlsFiles(dir);

      const warnings = checkTlsPair(pairOf(dir, "leaf.crt", "leaf.key"));

      assert.deepEqual(warnings, [
        `Certificate "${dir}/leaf.crt" is not a CA certificate; Squid needs ` +
        "a CA to sign the certificates it generates for bumped sites",
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "checkTlsPair() warns about an expired certificate",
  sanitized(PERMISSIONS),
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "tls-test-" });
    try {
      await makeTlsFiles(dir);

      await t.step("expired before today", () => {
        assert.deepEqual(checkTlsPair(pairOf(dir, "expired.crt", "ca.key")), [
          `Certificate "${dir}/expired.crt" expired on Dec 31 00:00:00 2020 ` +
          "GMT; clients will reject bumped connections until it is renewed",
        ]);
      });
      await t.step("valid on a date before its end", () => {
        const pair = pairOf(dir, "expired.crt", "ca.key");
        assert.deepEqual(checkTlsPair(pair, new Date("2020-06-01")), []);
      });
      await t.step("expired by the date given", () => {
        const warnings = checkTlsPair(
          pairOf(dir, "ca.crt", "ca.key"),
          new Date("2100-01-01"),
        );
        assert.equal(warnings.length, 1);
        assert.match(warnings[0], /^Certificate ".*\/ca\.crt" expired on /);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "loadTlsPairs() reads the legacy layout from the TLS secret",
  sanitized(PERMISSIONS),
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "tls-test-" });
    const secret = join(dir, "ssl_cert");
    try {
      await makeTlsFiles(dir);
      Deno.mkdirSync(secret);
      const ports = portTls(confFromLines([
        "http_port 3128",
        `http_port 3129 ssl-bump cert=${LEGACY_MERGED_PEM}`,
      ]));
      const origin = "http_port at /etc/squid/squid.conf:2";

      await t.step("tls.key missing", () => {
        Deno.copyFileSync(join(dir, "ca.crt"), join(secret, "tls.crt"));
        const err = throwsError(() => loadTlsPairs(ports, secret), TlsError);
        assert.equal(
          err.message,
          `SSL-bump is enabled (${origin}) but "${secret}/tls.key" is ` +
            "missing; mount the TLS secret with tls.crt and tls.key at " +
            `${secret}/`,
        );
      });
      await t.step("tls.crt missing", () => {
        Deno.removeSync(join(secret, "tls.crt"));
        Deno.copyFileSync(join(dir, "ca.key"), join(secret, "tls.key"));
        const err = throwsError(() => loadTlsPairs(ports, secret), TlsError);
        assert.match(err.message, /but ".*\/ssl_cert\/tls\.crt" is missing/);
      });
      await t.step("both present", () => {
        Deno.copyFileSync(join(dir, "ca.crt"), join(secret, "tls.crt"));
        assert.deepEqual(loadTlsPairs(ports, secret), [{
          certPath: `${secret}/tls.crt`,
          certPem: Deno.readTextFileSync(join(dir, "ca.crt")),
          keyPath: `${secret}/tls.key`,
          keyPem: Deno.readTextFileSync(join(dir, "ca.key")),
          origin,
        }]);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "loadTlsPairs() reads cert= and key= of SSL-bump ports in place",
  sanitized(PERMISSIONS),
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "tls-test-" });
    try {
      await makeTlsFiles(dir);
      const read = (name: string) => Deno.readTextFileSync(join(dir, name));
      const load = (...lines: string[]) =>
        loadTlsPairs(portTls(confFromLines(lines)), join(dir, "no-secret"));

      await t.step("cert= and key=", () => {
        assert.deepEqual(
          load(`http_port 3128 ssl-bump cert=${dir}/ca.crt key=${dir}/ca.key`),
          [{
            certPath: `${dir}/ca.crt`,
            certPem: read("ca.crt"),
            keyPath: `${dir}/ca.key`,
            keyPem: read("ca.key"),
            origin: ORIGIN,
          }],
        );
      });
      await t.step("cert= only: the key is in the same file", () => {
        const [pair] = load(`http_port 3128 ssl-bump tls-cert=${dir}/ca.crt`);
        assert.equal(pair.keyPath, `${dir}/ca.crt`);
        assert.equal(pair.keyPem, read("ca.crt"));
      });
      await t.step("ports without ssl-bump are skipped", () => {
        assert.deepEqual(
          load(
            "http_port 3128",
            `https_port 3129 cert=${dir}/missing.crt key=${dir}/ca.key`,
          ),
          [],
        );
      });
      await t.step("a missing file", () => {
        const err = throwsError(
          () => load(`https_port 3129 ssl-bump cert=${dir}/missing.crt`),
          TlsError,
        );
        assert.equal(
          err.message,
          `TLS file "${dir}/missing.crt" (https_port at ` +
            "/etc/squid/squid.conf:1) does not exist; mount it or fix " +
            "cert=/key= in squid.conf",
        );
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "writeMergedPem() writes certificate then key, mode 0600, atomically",
  sanitized({ read: true, write: true }),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "tls-test-" });
    try {
      const dest = join(dir, "squid-ca.pem");
      Deno.writeTextFileSync(dest, "stale", { mode: 0o644 });
      const pair = fakePair("CERT-NO-NEWLINE", "KEY\n");

      writeMergedPem(pair, dest);

      assert.equal(Deno.readTextFileSync(dest), "CERT-NO-NEWLINE\nKEY\n");
      assert.equal(Deno.statSync(dest).mode! & 0o777, 0o600);
      assert.deepEqual(listDir(dir), ["squid-ca.pem"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "writeMergedPem() leaves no temporary file when it fails",
  sanitized({ read: true, write: true }),
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "tls-test-" });
    const pair = fakePair("CERT\n", "KEY\n");
    try {
      await t.step("destination directory missing", () => {
        const dest = join(dir, "missing/squid-ca.pem");
        const err = throwsError(() => writeMergedPem(pair, dest), TlsError);
        assert.match(err.message, /not writable; mount a writable volume/);
        assert.equal(pathExists(join(dir, "missing")), false);
        assert.deepEqual(listDir(dir), []);
      });
      await t.step("destination is a directory", () => {
        const dest = join(dir, "squid-ca.pem");
        Deno.mkdirSync(dest);
        throwsError(() => writeMergedPem(pair, dest), Error);
        assert.deepEqual(listDir(dir), ["squid-ca.pem"]);
        assert.deepEqual(listDir(dest), []);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "writeMergedPem() asks for a writable volume on a read-only mount",
  sanitized({ read: true, write: true, run: ["mount", "umount"] }),
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "tls-test-" });
    try {
      const volume = join(dir, "lib");
      Deno.mkdirSync(volume);
      const unmount = await mountReadOnly(volume);
      await t.step({
        name: "on a read-only tmpfs",
        // Mounting needs root with CAP_SYS_ADMIN, as on the CI machine.
        ignore: !unmount,
        fn: async () => {
          try {
            const err = throwsError(
              () => writeMergedPem(fakePair("C", "K"), `${volume}/ca.pem`),
              TlsError,
            );
            assert.equal(
              err.message,
              `Cannot write the merged certificate "${volume}/ca.pem" ` +
                `(${ORIGIN}): ${volume} is not writable; mount a writable ` +
                "volume there",
            );
            assert.deepEqual(listDir(volume), []);
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

function fakePair(certPem: string, keyPem: string): TlsPair {
  return {
    certPath: "/etc/squid/ssl_cert/tls.crt",
    certPem,
    keyPath: "/etc/squid/ssl_cert/tls.key",
    keyPem,
    origin: ORIGIN,
  };
}
