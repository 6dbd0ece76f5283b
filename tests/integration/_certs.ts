/**
 * Test certificates, made at test time with the host's `openssl` CLI:
 * CAs for SSL-bump and for the HTTPS origin, a server certificate signed by
 * a CA, and an encrypted copy of a key. Keys are RSA because Squid's
 * certificate generator signs with the CA's key.
 *
 * @module
 */

import { join } from "node:path";

/** A certificate and its private key, as host paths. */
export interface CertFiles {
  certPath: string;
  keyPath: string;
}

const OPENSSL = "openssl";
const DAYS = "2";

/**
 * Creates a self-signed CA in `dir` as `tls.crt` and `tls.key`, the names
 * of a Kubernetes TLS secret. The key is left group-readable (0640) so
 * that a container user in group 0 can read it.
 */
export async function createCa(dir: string, name: string): Promise<CertFiles> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o755 });
  const files = {
    certPath: join(dir, "tls.crt"),
    keyPath: join(dir, "tls.key"),
  };
  const extensions = await writeExtensions(dir, "ca.ext", [
    "basicConstraints = critical, CA:TRUE",
    "keyUsage = critical, keyCertSign, cRLSign",
    "subjectKeyIdentifier = hash",
  ]);
  await openssl("req", [
    ["-x509", "-noenc", "-sha256"],
    ["-newkey", "rsa:2048"],
    ["-days", DAYS],
    ["-subj", `/CN=${name}`],
    ["-config", extensions, "-extensions", "ext"],
    ["-keyout", files.keyPath],
    ["-out", files.certPath],
  ]);
  await Deno.remove(extensions);
  await makeReadable(files);
  return files;
}

/**
 * Creates `server.crt` and `server.key` in `dir` for `hostnames`, signed by
 * `ca`, fit for a TLS server that clients verify by name.
 */
export async function createServerCert(
  dir: string,
  ca: CertFiles,
  hostnames: string[],
): Promise<CertFiles> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o755 });
  const files = {
    certPath: join(dir, "server.crt"),
    keyPath: join(dir, "server.key"),
  };
  const request = join(dir, "server.csr");
  const extensions = await writeExtensions(dir, "server.ext", [
    "basicConstraints = critical, CA:FALSE",
    "keyUsage = critical, digitalSignature, keyEncipherment",
    "extendedKeyUsage = serverAuth",
    `subjectAltName = ${hostnames.map((name) => `DNS:${name}`).join(", ")}`,
  ]);
  await openssl("req", [
    ["-new", "-noenc"],
    ["-newkey", "rsa:2048"],
    ["-subj", `/CN=${hostnames[0]}`],
    ["-keyout", files.keyPath],
    ["-out", request],
  ]);
  await openssl("x509", [
    ["-req", "-sha256"],
    ["-in", request],
    ["-days", DAYS],
    ["-CA", ca.certPath, "-CAkey", ca.keyPath],
    ["-set_serial", randomSerial()],
    ["-extfile", extensions, "-extensions", "ext"],
    ["-out", files.certPath],
  ]);
  await Deno.remove(extensions);
  await Deno.remove(request);
  await makeReadable(files);
  return files;
}

/** Writes `key` encrypted with AES-256 under a passphrase to `dest`. */
export async function encryptKey(key: string, dest: string): Promise<void> {
  await openssl("pkey", [
    ["-in", key, "-aes256"],
    ["-passout", "pass:cephaloproxy-test"],
    ["-out", dest],
  ]);
  await Deno.chmod(dest, 0o640);
}

async function writeExtensions(
  dir: string,
  name: string,
  lines: string[],
): Promise<string> {
  // A whole config file rather than -addext: OpenSSL's default config
  // would otherwise add its own v3_ca extensions next to ours.
  const path = join(dir, name);
  const text = [
    "[req]",
    "distinguished_name = dn",
    "[dn]",
    "[ext]",
    ...lines,
    "",
  ].join("\n");
  await Deno.writeTextFile(path, text);
  return path;
}

async function makeReadable(files: CertFiles): Promise<void> {
  await Deno.chmod(files.certPath, 0o644);
  await Deno.chmod(files.keyPath, 0o640);
}

function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  bytes[0] &= 0x7f;
  return "0x" +
    Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Runs `openssl COMMAND` with options written one group per line. */
async function openssl(command: string, options: string[][]): Promise<void> {
  const output = await new Deno.Command(OPENSSL, {
    args: [command, ...options.flat()],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) {
    const stderr = new TextDecoder().decode(output.stderr);
    throw new Error(
      `openssl ${command} failed (exit code ${output.code}): ${stderr}`,
    );
  }
}
