/**
 * The certificate database `security_file_certgen` keeps for SSL-bump.
 * It is created only when absent; a directory left half-made by an
 * interrupted start (no `certs/`, `index.txt` or `size`) is rebuilt.
 * `security_file_certgen -c` refuses an existing directory, and the
 * directory is often a volume mount that cannot be replaced, so the
 * database is built in a temporary directory on the same filesystem and
 * moved into place.
 *
 * @module
 */

import { exists, removeIfPresent } from "./_fs.ts";
import { spawnOrExplain } from "./squid.ts";
import { basename, dirname, join } from "node:path";

/** The entries `security_file_certgen -c` creates. */
const DB_ENTRIES = ["certs", "index.txt", "size"];

/** Thrown when `security_file_certgen` fails to create the database. */
export class CertDbError extends Error {
  override name = "CertDbError";
}

/** What `ensureCertDb()` found and did. */
export type CertDbResult = "present" | "created" | "repaired";

/** Whether `dir` holds a complete certificate database. */
export function isCertDbComplete(dir: string): boolean {
  return DB_ENTRIES.every((entry) => exists(join(dir, entry)));
}

/**
 * Creates the database at `dir` unless complete, and makes it writable by
 * group 0 so any UID in that group can add certificates.
 *
 * @throws {CertDbError} with the helper's output when creation fails.
 */
export async function ensureCertDb(
  certgenBin: string,
  dir: string,
  size: string,
): Promise<CertDbResult> {
  if (isCertDbComplete(dir)) return "present";

  const repairing = exists(dir);
  const temp = repairing
    ? join(dir, `.cephaloproxy-init-${Deno.pid}`)
    : join(dirname(dir), `.${basename(dir)}.cephaloproxy-init-${Deno.pid}`);
  removeIfPresent(temp);

  try {
    await runCertgen(certgenBin, temp, size);
    if (repairing) {
      for (const entry of DB_ENTRIES) removeIfPresent(join(dir, entry));
      for (const entry of DB_ENTRIES) {
        Deno.renameSync(join(temp, entry), join(dir, entry));
      }
      Deno.removeSync(temp);
    } else {
      Deno.renameSync(temp, dir);
    }
  } finally {
    removeIfPresent(temp);
  }

  makeGroupWritable(dir);
  return repairing ? "repaired" : "created";
}

async function runCertgen(bin: string, dir: string, size: string) {
  const child = spawnOrExplain(bin, () =>
    new Deno.Command(bin, {
      args: ["-c", "-s", dir, "-M", size],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn());
  const output = await child.output();
  if (!output.success) {
    const decoder = new TextDecoder();
    const text = (decoder.decode(output.stdout) +
      decoder.decode(output.stderr)).trim().replaceAll("\n", " ");
    throw new CertDbError(
      `Cannot create the SSL certificate database with ${bin}: ${text}`,
    );
  }
}

function makeGroupWritable(dir: string): void {
  Deno.chmodSync(dir, 0o770);
  for (const entry of Deno.readDirSync(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) makeGroupWritable(path);
    else Deno.chmodSync(path, 0o660);
  }
}
