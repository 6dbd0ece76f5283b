/**
 * Writes the SPDX 2.3 software bill of materials of the CephaloProxy image,
 * as JSON on stdout, from what the image is made of:
 *
 * - the dpkg records of every Debian package (one file per package in a
 *   distroless-style `status.d` directory; later directories win for a
 *   record file of the same name, as the image's layers do);
 * - the Deno runtime: its version, and the SHA-256 of its binary if given;
 * - the TypeScript entrypoint: every file under the source directory with
 *   its SHA-1 and SHA-256, and the package's own SHA-256.
 *
 * The Dockerfile's `sbom` stage runs it on the records of the runtime base
 * and of the squid stage. On the host:
 *
 *     node_modules/.bin/deno run --allow-read --allow-env=SOURCE_DATE_EPOCH \
 *       scripts/sbom.ts --status-dir DIR [--status-dir DIR] \
 *       --deno-version X [--deno-binary PATH] --src src/
 *
 * The output depends on the inputs alone. `created` is SOURCE_DATE_EPOCH
 * when set (https://reproducible-builds.org/specs/source-date-epoch/) and
 * otherwise the Unix epoch, a fixed value that claims no build time; the
 * document namespace is derived from a hash of the rest of the document.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { join } from "node:path";
import { parseArgs } from "node:util";

/** The distro qualifier of every Debian purl: the image is Debian 13. */
export const DEBIAN_DISTRO = "debian-13";
/** Where the Dockerfile installs the entrypoint sources. */
export const ENTRYPOINT_DIR = "/opt/cephaloproxy/src";
/** The environment variable that fixes `created`. */
export const SOURCE_DATE_EPOCH = "SOURCE_DATE_EPOCH";

const NOASSERTION = "NOASSERTION";
const DOCUMENT_ID = "SPDXRef-DOCUMENT";
const USAGE = "Usage: sbom.ts --status-dir DIR [--status-dir DIR] " +
  "--deno-version X [--deno-binary PATH] --src DIR";

/** A Debian package as its dpkg record describes it. */
export interface DebianPackage {
  name: string;
  version: string;
  arch: string;
  /** The source package, when the record names one. */
  source?: { name: string; version: string };
  maintainer?: string;
  homepage?: string;
}

/** A file of the entrypoint, by its path relative to the source dir. */
export interface SourceFile {
  path: string;
  sha1: string;
  sha256: string;
}

/** Everything the document is made from. */
export interface SbomInputs {
  debianPackages: DebianPackage[];
  denoVersion: string;
  /** SHA-256 of the Deno binary, when it was read. */
  denoSha256?: string;
  sourceFiles: SourceFile[];
  /** An ISO 8601 time in UTC, without fractional seconds. */
  created: string;
}

/** The parts of an SPDX 2.3 document this script writes. */
export interface SpdxDocument {
  spdxVersion: string;
  dataLicense: string;
  SPDXID: string;
  name: string;
  documentNamespace: string;
  comment: string;
  creationInfo: { created: string; creators: string[] };
  packages: Record<string, unknown>[];
  files: Record<string, unknown>[];
  relationships: {
    spdxElementId: string;
    relationshipType: string;
    relatedSpdxElement: string;
  }[];
}

/**
 * Splits a dpkg control text into paragraphs of fields; a line that starts
 * with a space or a tab continues the field above it.
 *
 * @throws {SyntaxError} for a line that is neither a field nor a
 * continuation.
 */
export function parseControl(text: string): Map<string, string>[] {
  const paragraphs: Map<string, string>[] = [];
  let fields = new Map<string, string>();
  let last: string | undefined;
  for (const [index, line] of text.split("\n").entries()) {
    if (line.trim() === "") {
      if (fields.size > 0) paragraphs.push(fields);
      fields = new Map();
      last = undefined;
    } else if (line.startsWith(" ") || line.startsWith("\t")) {
      if (last === undefined) {
        throw new SyntaxError(
          `Cannot parse line ${index + 1} of a dpkg record: a continuation ` +
            `line with no field above it`,
        );
      }
      fields.set(last, `${fields.get(last)}\n${line}`);
    } else {
      const colon = line.indexOf(":");
      if (colon <= 0) {
        throw new SyntaxError(
          `Cannot parse line ${index + 1} of a dpkg record: "${line}" ` +
            `is not a "Field: value" line`,
        );
      }
      last = line.slice(0, colon);
      fields.set(last, line.slice(colon + 1).trim());
    }
  }
  if (fields.size > 0) paragraphs.push(fields);
  return paragraphs;
}

/**
 * Reads the package records of `status.d` directories. Files named
 * `*.md5sums` (and any other dotted companion) are skipped; a record file
 * in a later directory replaces one of the same name in an earlier one.
 *
 * @returns the packages sorted by name, then architecture.
 * @throws {TypeError} for a record without Package, Version or Architecture.
 */
export async function readStatusDirs(
  dirs: string[],
): Promise<DebianPackage[]> {
  const records = new Map<string, string>();
  for (const dir of dirs) {
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile || isCompanionFile(entry.name)) continue;
      records.set(entry.name, join(dir, entry.name));
    }
  }

  const packages: DebianPackage[] = [];
  for (const path of records.values()) {
    for (const fields of parseControl(await Deno.readTextFile(path))) {
      packages.push(toDebianPackage(fields, path));
    }
  }
  return packages.sort((a, b) =>
    compare(a.name, b.name) || compare(a.arch, b.arch)
  );
}

/** Returns the package URL of a Debian package. */
export function debianPurl(pkg: DebianPackage): string {
  return `pkg:deb/debian/${encodePurl(pkg.name)}@${encodePurl(pkg.version)}` +
    `?arch=${encodePurl(pkg.arch)}&distro=${DEBIAN_DISTRO}`;
}

/**
 * Lists every regular file under `dir` with its checksums, sorted by path.
 *
 * @throws {TypeError} for an entry that is neither a file nor a directory.
 */
export async function readSourceTree(dir: string): Promise<SourceFile[]> {
  const files: SourceFile[] = [];
  async function walk(relative: string): Promise<void> {
    for await (const entry of Deno.readDir(join(dir, relative))) {
      const path = relative === "" ? entry.name : `${relative}/${entry.name}`;
      if (entry.isDirectory) {
        await walk(path);
      } else if (entry.isFile) {
        const bytes = await Deno.readFile(join(dir, path));
        files.push({
          path,
          sha1: hash("sha1", bytes),
          sha256: hash("sha256", bytes),
        });
      } else {
        throw new TypeError(
          `Cannot list "${join(dir, path)}": it is not a regular file; ` +
            `the entrypoint is copied as plain files`,
        );
      }
    }
  }
  await walk("");
  return files.sort((a, b) => compare(a.path, b.path));
}

/** Returns the SHA-256 of a file, read in chunks. */
export async function sha256File(path: string): Promise<string> {
  const digest = createHash("sha256");
  using file = await Deno.open(path);
  for await (const chunk of file.readable) digest.update(chunk);
  return digest.digest("hex");
}

/**
 * Turns a SOURCE_DATE_EPOCH value into the document's `created` time; an
 * unset or empty value gives the Unix epoch.
 *
 * @throws {RangeError} when the value is not a whole number of seconds.
 */
export function createdFromEpoch(value: string | undefined): string {
  if (value === undefined || value === "") return isoSeconds(0);
  if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new RangeError(
      `Cannot use ${SOURCE_DATE_EPOCH}="${value}": it is not a whole ` +
        `number of seconds; unset it or set it to a time such as ` +
        `"$(git log -1 --format=%ct)"`,
    );
  }
  return isoSeconds(Number(value));
}

/**
 * Builds the SPDX 2.3 document. The same inputs, in any order, give the
 * same document, byte for byte once serialised.
 */
export function buildSbom(inputs: SbomInputs): SpdxDocument {
  const ids = new SpdxIds();
  const packages: Record<string, unknown>[] = [];
  const files: Record<string, unknown>[] = [];
  const relationships: SpdxDocument["relationships"] = [];
  const sourceFiles = inputs.sourceFiles.toSorted((a, b) =>
    compare(a.path, b.path)
  );

  // Debian packages: what dpkg records, nothing more is claimed.
  const debianPackages = inputs.debianPackages.toSorted((a, b) =>
    compare(a.name, b.name) || compare(a.arch, b.arch)
  );
  for (const pkg of debianPackages) {
    packages.push(
      debianPackageElement(
        pkg,
        ids.next(`Package-deb-${pkg.name}-${pkg.arch}`),
      ),
    );
  }

  // The Deno runtime.
  packages.push({
    name: "deno",
    SPDXID: ids.next("Package-deno"),
    versionInfo: inputs.denoVersion,
    downloadLocation: NOASSERTION,
    filesAnalyzed: false,
    ...(inputs.denoSha256 === undefined ? {} : {
      checksums: [{ algorithm: "SHA256", checksumValue: inputs.denoSha256 }],
    }),
    licenseConcluded: NOASSERTION,
    licenseDeclared: NOASSERTION,
    copyrightText: NOASSERTION,
    primaryPackagePurpose: "APPLICATION",
    comment: "The JavaScript and TypeScript runtime at /usr/bin/deno",
    externalRefs: [
      purlRef(`pkg:generic/deno@${encodePurl(inputs.denoVersion)}`),
    ],
  });

  // The entrypoint, with every one of its files.
  const entrypointId = ids.next("Package-cephaloproxy-entrypoint");
  const fileIds = sourceFiles.map((file) => ids.next(`File-${file.path}`));
  packages.push({
    name: "cephaloproxy-entrypoint",
    SPDXID: entrypointId,
    downloadLocation: NOASSERTION,
    filesAnalyzed: true,
    packageVerificationCode: {
      packageVerificationCodeValue: hash(
        "sha1",
        sourceFiles.map((file) => file.sha1).sort().join(""),
      ),
    },
    checksums: [{
      algorithm: "SHA256",
      checksumValue: entrypointSha256(sourceFiles),
    }],
    licenseConcluded: NOASSERTION,
    licenseInfoFromFiles: [NOASSERTION],
    licenseDeclared: NOASSERTION,
    copyrightText: NOASSERTION,
    primaryPackagePurpose: "APPLICATION",
    comment: `The TypeScript entrypoint, installed at ${ENTRYPOINT_DIR}; its ` +
      `SHA-256 is that of the sha256sum-style listing "HASH  ./PATH" of its ` +
      `files, one line each, sorted by path`,
  });
  for (const [index, file] of sourceFiles.entries()) {
    files.push({
      fileName: `./${file.path}`,
      SPDXID: fileIds[index],
      checksums: [
        { algorithm: "SHA1", checksumValue: file.sha1 },
        { algorithm: "SHA256", checksumValue: file.sha256 },
      ],
      licenseConcluded: NOASSERTION,
      licenseInfoInFiles: [NOASSERTION],
      copyrightText: NOASSERTION,
    });
    relationships.push(relationship(entrypointId, "CONTAINS", fileIds[index]));
  }

  for (const pkg of packages) {
    relationships.push(
      relationship(DOCUMENT_ID, "DESCRIBES", pkg.SPDXID as string),
    );
  }
  relationships.sort((a, b) =>
    compare(a.relationshipType, b.relationshipType) ||
    compare(a.relatedSpdxElement, b.relatedSpdxElement)
  );

  const document: SpdxDocument = {
    spdxVersion: "SPDX-2.3",
    dataLicense: "CC0-1.0",
    SPDXID: DOCUMENT_ID,
    name: "cephaloproxy",
    documentNamespace: "",
    comment: "The CephaloProxy image: its Debian packages (from " +
      "/var/lib/dpkg/status.d), the Deno runtime and the entrypoint",
    creationInfo: {
      created: inputs.created,
      creators: ["Tool: cephaloproxy-sbom"],
    },
    packages,
    files,
    relationships,
  };
  document.documentNamespace = `urn:uuid:${
    uuidFromHash(hash("sha256", JSON.stringify(document)))
  }`;
  return document;
}

/**
 * Reads the inputs named by the command line and returns the document
 * text, ending in a newline.
 *
 * @throws {TypeError} for a missing or unknown option.
 */
export async function generateSbom(args: string[]): Promise<string> {
  const { values } = parseArgs({
    args,
    options: {
      "status-dir": { type: "string", multiple: true },
      "deno-version": { type: "string" },
      "deno-binary": { type: "string" },
      src: { type: "string" },
    },
    strict: true,
    allowPositionals: false,
  });
  const statusDirs = values["status-dir"] ?? [];
  const denoVersion = values["deno-version"] ?? "";
  if (
    statusDirs.length === 0 || !/^[0-9][0-9A-Za-z.+-]*$/.test(denoVersion) ||
    !values.src
  ) {
    throw new TypeError(
      `Cannot write the SBOM: --status-dir, --src and a --deno-version such ` +
        `as "2.9.6" are required; ${USAGE}`,
    );
  }

  const document = buildSbom({
    debianPackages: await readStatusDirs(statusDirs),
    denoVersion,
    denoSha256: values["deno-binary"] === undefined
      ? undefined
      : await sha256File(values["deno-binary"]),
    sourceFiles: await readSourceTree(values.src),
    created: createdFromEpoch(Deno.env.get(SOURCE_DATE_EPOCH)),
  });
  return `${JSON.stringify(document, null, 2)}\n`;
}

/** Returns the SPDX element of one Debian package. */
function debianPackageElement(
  pkg: DebianPackage,
  id: string,
): Record<string, unknown> {
  return {
    name: pkg.name,
    SPDXID: id,
    versionInfo: pkg.version,
    ...(pkg.maintainer === undefined
      ? {}
      : { supplier: supplierOf(pkg.maintainer) }),
    downloadLocation: NOASSERTION,
    filesAnalyzed: false,
    ...(pkg.homepage === undefined ? {} : { homepage: pkg.homepage }),
    ...(pkg.source === undefined ? {} : {
      sourceInfo: "built from Debian source package " +
        `${pkg.source.name} ${pkg.source.version}`,
    }),
    licenseConcluded: NOASSERTION,
    licenseDeclared: NOASSERTION,
    copyrightText: NOASSERTION,
    externalRefs: [purlRef(debianPurl(pkg))],
  };
}

/**
 * Builds a package from its record's fields. The source version is the
 * one in parentheses after the name, else the binary version (Debian
 * policy 5.6.1).
 */
function toDebianPackage(
  fields: Map<string, string>,
  path: string,
): DebianPackage {
  const name = fields.get("Package");
  const version = fields.get("Version");
  const arch = fields.get("Architecture");
  if (!name || !version || !arch) {
    throw new TypeError(
      `Cannot read the dpkg record "${path}": it lacks Package, Version or ` +
        `Architecture`,
    );
  }
  const pkg: DebianPackage = { name, version, arch };
  const source = fields.get("Source")?.match(/^(\S+)(?:\s+\((\S+)\))?$/);
  if (source) pkg.source = { name: source[1], version: source[2] ?? version };
  const maintainer = fields.get("Maintainer");
  if (maintainer) pkg.maintainer = maintainer;
  // Only the first line: a record whose Description was cut may leave its
  // continuation lines under the field above, often Homepage.
  const homepage = fields.get("Homepage")?.split("\n")[0];
  if (homepage && /^https?:\/\/\S+$/.test(homepage)) pkg.homepage = homepage;
  return pkg;
}

/** `Name <mail>` becomes SPDX's `Organization: Name (mail)`. */
function supplierOf(maintainer: string): string {
  const match = maintainer.match(/^(.*?)\s*<([^>]*)>$/);
  return match
    ? `Organization: ${match[1]} (${match[2]})`
    : `Organization: ${maintainer}`;
}

/** The SHA-256 of the `HASH  ./PATH` lines of the files, sorted by path. */
function entrypointSha256(files: SourceFile[]): string {
  const listing = files
    .map((file) => `${file.sha256}  ./${file.path}\n`)
    .sort()
    .join("");
  return hash("sha256", listing);
}

function purlRef(locator: string): Record<string, string> {
  return {
    referenceCategory: "PACKAGE-MANAGER",
    referenceType: "purl",
    referenceLocator: locator,
  };
}

function relationship(
  from: string,
  type: string,
  to: string,
): SpdxDocument["relationships"][number] {
  return {
    spdxElementId: from,
    relationshipType: type,
    relatedSpdxElement: to,
  };
}

/**
 * Percent-encodes a purl component; `:` may stay as it is (purl spec,
 * "Character encoding"), which keeps Debian epochs readable.
 */
function encodePurl(value: string): string {
  return encodeURIComponent(value).replaceAll("%3A", ":");
}

/** Whether a status.d entry is a companion of a record, e.g. `.md5sums`. */
function isCompanionFile(name: string): boolean {
  return /\.(md5sums|conffiles|list)$/.test(name);
}

/** Hands out unique SPDX identifiers made of the allowed characters. */
class SpdxIds {
  #used = new Set<string>();

  next(hint: string): string {
    const base = `SPDXRef-${hint.replace(/[^A-Za-z0-9.-]+/g, "-")}`;
    let id = base;
    for (let n = 2; this.#used.has(id); n++) id = `${base}-${n}`;
    this.#used.add(id);
    return id;
  }
}

/** Formats a UUID (version 8, RFC 9562) from the first bytes of a hash. */
function uuidFromHash(hex: string): string {
  const digits = hex.slice(0, 32).split("");
  digits[12] = "8";
  digits[16] = "89ab"[parseInt(digits[16], 16) & 3];
  const d = digits.join("");
  return `${d.slice(0, 8)}-${d.slice(8, 12)}-${d.slice(12, 16)}-` +
    `${d.slice(16, 20)}-${d.slice(20)}`;
}

function hash(algorithm: string, data: Uint8Array | string): string {
  return createHash(algorithm).update(data).digest("hex");
}

function isoSeconds(epochSeconds: number): string {
  return new Date(epochSeconds * 1000).toISOString().replace(".000Z", "Z");
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Writes all of `bytes`; one write may take only part of them. */
function writeAll(stream: typeof Deno.stdout, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length;) {
    done += stream.writeSync(bytes.subarray(done));
  }
}

async function main(): Promise<void> {
  const encoder = new TextEncoder();
  let text: string;
  try {
    text = await generateSbom(Deno.args);
  } catch (err) {
    // Bad input is one line for the user; anything else keeps its stack.
    if (
      !(err instanceof TypeError || err instanceof RangeError ||
        err instanceof SyntaxError || err instanceof Deno.errors.NotFound)
    ) throw err;
    writeAll(Deno.stderr, encoder.encode(`sbom.ts: ${err.message}\n`));
    Deno.exit(1);
  }
  writeAll(Deno.stdout, encoder.encode(text));
}

if (import.meta.main) await main();
