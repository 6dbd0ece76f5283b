/**
 * SSL-bump files. When a listening port bumps TLS, its certificate and key
 * must parse, match, and the key must not need a passphrase. The legacy
 * Kubernetes layout, a TLS secret (`tls.crt`, `tls.key`) mounted at
 * /etc/squid/ssl_cert/ and merged into /var/lib/squid/squid-ca.pem, keeps
 * working; ports whose `cert=`/`key=` name other files are checked in place.
 *
 * @module
 */

import { isFile, isReadOnlyError, removeIfPresent } from "./_fs.ts";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { dirname, join } from "node:path";
import type { PortTls } from "./required_paths.ts";
import { where } from "./squid_conf.ts";

/** The merged certificate-and-key file of the legacy layout. */
export const LEGACY_MERGED_PEM = "/var/lib/squid/squid-ca.pem";

/** A certificate and key to check, and where they came from. */
export interface TlsPair {
  certPath: string;
  certPem: string;
  keyPath: string;
  keyPem: string;
  origin: string;
}

/** Thrown for a TLS file that is missing, unreadable or unusable. */
export class TlsError extends Error {
  override name = "TlsError";
}

/**
 * Finds the certificate and key each SSL-bump port will load. For the
 * legacy merged path the pair comes from the mounted secret.
 *
 * @throws {TlsError} when a file is missing or unreadable.
 */
export function loadTlsPairs(ports: PortTls[], secretDir: string): TlsPair[] {
  const pairs: TlsPair[] = [];
  for (const port of ports.filter((p) => p.sslBump && p.cert)) {
    const origin = `${port.directive.name} at ${where(port.directive)}`;
    if (port.cert === LEGACY_MERGED_PEM && !port.key) {
      pairs.push(loadSecret(secretDir, origin));
      continue;
    }
    const certPath = port.cert!;
    const keyPath = port.key ?? certPath;
    pairs.push({
      certPath,
      certPem: readPem(certPath, origin),
      keyPath,
      keyPem: readPem(keyPath, origin),
      origin,
    });
  }
  return pairs;
}

function loadSecret(secretDir: string, origin: string): TlsPair {
  const certPath = join(secretDir, "tls.crt");
  const keyPath = join(secretDir, "tls.key");
  for (const path of [certPath, keyPath]) {
    if (!isFile(path)) {
      throw new TlsError(
        `SSL-bump is enabled (${origin}) but "${path}" is missing; ` +
          `mount the TLS secret with tls.crt and tls.key at ${secretDir}/`,
      );
    }
  }
  return {
    certPath,
    certPem: readPem(certPath, origin),
    keyPath,
    keyPem: readPem(keyPath, origin),
    origin,
  };
}

/**
 * Checks that the certificate parses, the key parses without a passphrase
 * and the two belong together. Returns warnings for usable but doubtful
 * certificates (not a CA, expired).
 *
 * @throws {TlsError} naming the failed check and the file.
 */
export function checkTlsPair(pair: TlsPair, now = new Date()): string[] {
  const certBlock = pemBlock(pair.certPem, "CERTIFICATE");
  if (!certBlock) {
    throw new TlsError(
      `No certificate in "${pair.certPath}" (${pair.origin}): expected a ` +
        '"BEGIN CERTIFICATE" PEM block; mount the CA certificate there',
    );
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certBlock);
  } catch {
    throw new TlsError(
      `Cannot parse the certificate in "${pair.certPath}" (${pair.origin}); ` +
        "replace it with a valid PEM certificate",
    );
  }

  if (
    /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(
      pair.keyPem,
    )
  ) {
    throw new TlsError(
      `The private key in "${pair.keyPath}" (${pair.origin}) is encrypted; ` +
        "Squid cannot ask for a passphrase: decrypt it with " +
        '"openssl pkey -in KEY -out KEY.plain" and mount that',
    );
  }
  const keyBlock = pemBlock(pair.keyPem, "PRIVATE KEY");
  if (!keyBlock) {
    throw new TlsError(
      `No private key in "${pair.keyPath}" (${pair.origin}): expected a ` +
        '"BEGIN ... PRIVATE KEY" PEM block; mount the key there',
    );
  }
  let key;
  try {
    key = createPrivateKey(keyBlock);
  } catch {
    throw new TlsError(
      `Cannot parse the private key in "${pair.keyPath}" (${pair.origin}); ` +
        "replace it with an unencrypted PEM key",
    );
  }

  if (!cert.checkPrivateKey(key)) {
    throw new TlsError(
      `Certificate "${pair.certPath}" and key "${pair.keyPath}" do not ` +
        `match (${pair.origin}); mount the key that belongs to the certificate`,
    );
  }

  const warnings: string[] = [];
  if (!cert.ca) {
    warnings.push(
      `Certificate "${pair.certPath}" is not a CA certificate; Squid needs ` +
        "a CA to sign the certificates it generates for bumped sites",
    );
  }
  if (new Date(cert.validTo) < now) {
    warnings.push(
      `Certificate "${pair.certPath}" expired on ${cert.validTo}; clients ` +
        "will reject bumped connections until it is renewed",
    );
  }
  return warnings;
}

/**
 * Writes certificate then key into the legacy merged file, mode 0600,
 * through a temporary file and a rename, so a failure leaves no half file.
 */
export function writeMergedPem(pair: TlsPair, dest = LEGACY_MERGED_PEM) {
  const temp = join(dirname(dest), `.squid-ca.pem.${Deno.pid}.tmp`);
  const text = ensureNewline(pair.certPem) + ensureNewline(pair.keyPem);
  try {
    Deno.writeTextFileSync(temp, text, { mode: 0o600 });
    Deno.chmodSync(temp, 0o600);
    Deno.renameSync(temp, dest);
  } catch (err) {
    removeIfPresent(temp);
    const unwritable = err instanceof Deno.errors.PermissionDenied ||
      err instanceof Deno.errors.NotFound || isReadOnlyError(err);
    if (unwritable) {
      throw new TlsError(
        `Cannot write the merged certificate "${dest}" (${pair.origin}): ` +
          `${dirname(dest)} is not writable; mount a writable volume there`,
      );
    }
    throw err;
  }
}

function readPem(path: string, origin: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new TlsError(
        `TLS file "${path}" (${origin}) does not exist; mount it or fix ` +
          "cert=/key= in squid.conf",
      );
    }
    if (err instanceof Deno.errors.PermissionDenied) {
      throw new TlsError(
        `Cannot read TLS file "${path}" (${origin}): permission denied; ` +
          "make it readable by group 0 (for a Kubernetes secret, set " +
          "defaultMode 0440 and fsGroup 0)",
      );
    }
    throw err;
  }
}

function pemBlock(text: string, label: string): string | undefined {
  const pattern = new RegExp(
    `-----BEGIN ([A-Z ]*)${label}-----[\\s\\S]*?-----END \\1${label}-----`,
  );
  return pattern.exec(text)?.[0];
}

function ensureNewline(text: string): string {
  return text.endsWith("\n") ? text : text + "\n";
}
