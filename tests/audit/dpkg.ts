/**
 * Reads distroless-style dpkg records: one control file per package in
 * `/var/lib/dpkg/status.d/`, with its `.md5sums` beside it.
 *
 * This reader is separate from the one in `scripts/sbom.ts` on purpose:
 * the tests compare the SBOM with what this one finds, so one parser's
 * mistake cannot hide in both.
 *
 * @module
 */

import { join } from "node:path";

/** The status.d directory, relative to an image root. */
export const STATUS_DIR = "var/lib/dpkg/status.d";

/** One package record and the files it claims. */
export interface DpkgRecord {
  /** The record's file name in status.d. */
  file: string;
  /** The record's text, for comparing it with another copy. */
  text: string;
  name: string;
  version: string;
  arch: string;
  /** MD5 by path, without the leading slash, from md5sums and Conffiles. */
  files: Map<string, string>;
}

/**
 * Reads every record of a status.d directory, sorted by file name.
 *
 * @throws {SyntaxError} for a record without Package or Version, or a
 * malformed md5sums line.
 */
export async function readRecords(dir: string): Promise<DpkgRecord[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    // Package names may hold dots; the companions end in known suffixes.
    if (entry.isFile && !/\.(md5sums|conffiles|list)$/.test(entry.name)) {
      names.push(entry.name);
    }
  }

  const records: DpkgRecord[] = [];
  for (const file of names.sort()) {
    const text = await Deno.readTextFile(join(dir, file));
    const field = (name: string) =>
      text.match(new RegExp(`^${name}: *(\\S+) *$`, "m"))?.[1];
    const name = field("Package");
    const version = field("Version");
    if (!name || !version) {
      throw new SyntaxError(
        `Cannot read the dpkg record "${join(dir, file)}": it has no ` +
          `Package or Version field`,
      );
    }
    records.push({
      file,
      text,
      name,
      version,
      arch: field("Architecture") ?? "",
      files: new Map([
        ...conffiles(text),
        ...await md5sums(join(dir, `${file}.md5sums`)),
      ]),
    });
  }
  return records;
}

/** The ` /path md5` lines of a Conffiles field. */
function conffiles(text: string): [string, string][] {
  const block = text.match(/^Conffiles:[^\n]*\n((?:[ \t][^\n]*\n?)*)/m);
  if (!block) return [];
  return block[1].split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter((parts) => parts[0]?.startsWith("/"))
    .map((parts) => [parts[0].slice(1), parts[1] ?? ""]);
}

/** The `md5  path` lines of an md5sums file; none when it is absent. */
async function md5sums(path: string): Promise<[string, string][]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  return text.split("\n").filter((line) => line !== "").map((line) => {
    const match = line.match(/^([0-9a-f]{32}) [ *](.+)$/);
    if (!match) {
      throw new SyntaxError(
        `Cannot read "${path}": "${line}" is not an "MD5  PATH" line`,
      );
    }
    return [match[2].replace(/^\/+/, ""), match[1]];
  });
}
