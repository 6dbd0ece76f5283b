/**
 * Audits an image's root filesystem, unpacked in a host directory (for
 * example by `docker export`), for what a minimal runtime image promises:
 *
 * - `needed-library`: every ELF file's interpreter and DT_NEEDED libraries
 *   are in the image, where the loader looks for them;
 * - `unloaded-library`: every shared library the build adds is loaded by
 *   some program; the base image's own packages, and what glibc opens by
 *   name at run time, are allowed as they are;
 * - `dpkg-record`: every regular file is claimed by a dpkg record with the
 *   right MD5, or is one of the few files the build writes itself, and
 *   every file a record claims is there;
 * - `setuid`: no file is setuid or setgid;
 * - `world-writable`: nothing but /tmp can be written by everyone;
 * - `user`: the image does not run as root;
 * - `executable`: the only executable files are Squid, its helpers, tini,
 *   Deno and the shared libraries;
 * - `forbidden-tool`: no shell, no apt or dpkg, no Perl or Python.
 *
 * The checks follow GoogleContainerTools/distroless's structure tests and
 * the loader's search order in ld.so(8).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { basename, dirname } from "node:path";
import { type DpkgRecord, readRecords, STATUS_DIR } from "./dpkg.ts";
import { type ElfInfo, ET_DYN, isElf, readElf } from "./elf.ts";
import { type Entry, Rootfs } from "./rootfs.ts";

/** The name of each check, as findings carry it. */
export type Check =
  | "needed-library"
  | "unloaded-library"
  | "dpkg-record"
  | "setuid"
  | "world-writable"
  | "user"
  | "executable"
  | "forbidden-tool";

/** One thing the image should not have, or should have and lacks. */
export interface Finding {
  check: Check;
  /** The image path the finding is about. */
  path: string;
  message: string;
}

/** A shared library and who loads it. */
export interface Library {
  path: string;
  /** The names it was found under: DT_NEEDED entries or PT_INTERP. */
  neededAs: string[];
  /** The programs whose dependency closure holds it. */
  loadedBy: string[];
  /** Why it may stay unloaded, if it may. */
  allowance?: "base" | "dlopen";
}

/** What the audit found. */
export interface AuditReport {
  findings: Finding[];
  /** The image's dpkg records. */
  records: DpkgRecord[];
  libraries: Library[];
  /** Every ELF file, by canonical image path. */
  elf: Map<string, ElfInfo>;
}

/** What the audit needs besides the tree. */
export interface AuditOptions {
  /** The runtime base image's status.d, copied out of that image. */
  baseStatusDir: string;
  /** The image config's `User`, as `docker image inspect` gives it. */
  user: string;
}

/**
 * Where the loader looks after DT_RPATH and DT_RUNPATH: Debian's multiarch
 * directories and the x86-64 defaults (ld.so(8), "trusted directories").
 */
export const LIBRARY_DIRS = [
  "/usr/lib/x86_64-linux-gnu",
  "/lib/x86_64-linux-gnu",
  "/usr/lib64",
  "/lib64",
];

/**
 * Libraries glibc opens by name at run time, never through DT_NEEDED; they
 * may stay unloaded wherever they come from.
 */
const DLOPEN_LIBRARIES = [
  // iconv(3) converters, chosen through gconv-modules.
  /^\/usr\/lib\/x86_64-linux-gnu\/gconv\//,
  // Name service modules, chosen by nsswitch.conf(5).
  /\/libnss_[^/]+\.so[^/]*$/,
  // libthread_db is opened by debuggers; the others are LD_PRELOAD tools.
  /\/(libthread_db|libc_malloc_debug|libmemusage|libpcprofile)\.so[^/]*$/,
];

/** The programs the image exists to run, with Squid's helpers below. */
const PROGRAMS = ["/usr/sbin/squid-openssl", "/usr/bin/tini", "/usr/bin/deno"];
const SQUID_HELPERS = "/usr/lib/squid";

/**
 * Regular files the build writes itself, so no dpkg record claims them.
 * A trailing slash covers a whole tree.
 */
export const UNPACKAGED_FILES = [
  // The TypeScript entrypoint (Dockerfile: COPY src/).
  "/opt/cephaloproxy/src/",
  // The Deno binary, from the deno stage.
  "/usr/bin/deno",
  // The default squid.conf, and the SBOM from the sbom stage.
  "/usr/share/cephaloproxy/squid.conf",
  "/usr/share/cephaloproxy/sbom.spdx.json",
  // The base's accounts plus the squid user (squid stage).
  "/etc/passwd",
  "/etc/group",
  // The CA bundle the base generates from ca-certificates.
  "/etc/ssl/certs/ca-certificates.crt",
  // The dpkg records themselves.
  `/${STATUS_DIR}/`,
];

/**
 * What `docker create` adds to every container and Docker mounts over at
 * run time; `docker export` writes them out, but they are not the image's.
 * The files count only while empty, as Docker leaves them.
 */
const DOCKER_TREES = ["/dev/", "/proc/", "/sys/"];
const DOCKER_FILES = [
  "/.dockerenv",
  "/etc/hostname",
  "/etc/hosts",
  "/etc/resolv.conf",
];

/** Names no runtime file may have, with what each would be. */
const FORBIDDEN_NAMES: [RegExp, string][] = [
  [
    oneOf("sh bash rbash dash ash busybox ksh ksh93 mksh zsh csh tcsh"),
    "a shell",
  ],
  [
    oneOf(
      "apt apt-get apt-cache apt-config apt-key apt-mark aptitude dpkg " +
        "dpkg-[a-z-]+ update-alternatives",
    ),
    "a package manager tool",
  ],
  [
    oneOf(
      "perl perl5[0-9.]* python python[0-9.]+ libperl\\.so.* " +
        "libpython[0-9.]+\\.so.*",
    ),
    "a Perl or Python interpreter",
  ],
];
/** Module trees of those interpreters. */
const FORBIDDEN_DIRS = new RegExp(
  "^/usr/(lib|share|lib/x86_64-linux-gnu)/" +
    "(perl|perl5|perl-base|python[0-9.]*)$",
);

/** Runs every check on the tree at `root`. */
export async function auditRootfs(
  root: string,
  options: AuditOptions,
): Promise<AuditReport> {
  const fs = await Rootfs.load(root);
  const records = await readRecords(fs.hostPath(STATUS_DIR));
  const baseRecords = await readRecords(options.baseStatusDir);
  const findings: Finding[] = [];

  // Read every regular file once: its MD5, and its headers if it is ELF.
  const files = [...fs.entries.values()]
    .filter((entry) => entry.kind === "file" && !isDockerFile(entry));
  const md5 = new Map<string, string>();
  const elf = new Map<string, ElfInfo>();
  const shebangs = new Map<string, string>();
  for (const file of files) {
    const bytes = await Deno.readFile(fs.hostPath(file.path));
    md5.set(file.path, createHash("md5").update(bytes).digest("hex"));
    if (isElf(bytes)) {
      try {
        elf.set(file.path, readElf(bytes));
      } catch (err) {
        if (!(err instanceof RangeError)) throw err;
        findings.push({
          check: "needed-library",
          path: file.path,
          message: err.message,
        });
      }
    } else if (bytes[0] === 0x23 && bytes[1] === 0x21) {
      const line =
        new TextDecoder().decode(bytes.subarray(2, 256)).split("\n")[0];
      shebangs.set(file.path, line.trim().split(/\s+/)[0] ?? "");
    }
  }

  const libraries = findLoadedLibraries(fs, elf, findings);
  allowUnloadedLibraries(fs, libraries, records, baseRecords);
  for (const library of libraries) {
    if (library.loadedBy.length > 0 || library.allowance) continue;
    findings.push({
      check: "unloaded-library",
      path: library.path,
      message: "is a shared library that no program in the image loads",
    });
  }

  findings.push(
    ...checkRecords(fs, files, md5, records),
    ...checkModes(fs),
    ...checkUser(fs, options.user),
    ...checkExecutables(fs, files, elf, shebangs),
    ...checkForbiddenTools(fs),
  );
  return { findings, records, libraries, elf };
}

/** One line per finding, for a failing assertion's message. */
export function formatFindings(findings: Finding[]): string {
  return findings
    .map((finding) => `[${finding.check}] ${finding.path}: ${finding.message}`)
    .join("\n");
}

/**
 * Whether an ELF file is a shared library rather than a program: named
 * like one (`libc.so.6` has an interpreter too), or ET_DYN without one.
 */
export function isLibrary(path: string, info: ElfInfo): boolean {
  return /\.so(\.|$)/.test(basename(path)) ||
    (info.type === ET_DYN && info.interpreter === undefined);
}

/**
 * Finds the library a DT_NEEDED name stands for, in the order of ld.so(8):
 * DT_RPATH when there is no DT_RUNPATH, then DT_RUNPATH, then the default
 * directories. A loader's DT_RPATH is not applied to what it loads in
 * turn: Debian builds avoid RPATH (lintian's "custom-library-search-path").
 */
export function findLibrary(
  fs: Rootfs,
  name: string,
  needer: { path: string; info: ElfInfo },
): string | undefined {
  if (name.includes("/")) {
    return fs.regularFile(name) ? fs.resolve(name) : undefined;
  }
  const origin = dirname(needer.path);
  const expand = (dirs: string[]) =>
    dirs.map((dir) => dir.replace(/\$(ORIGIN|\{ORIGIN\})/g, origin));
  const dirs = [
    ...(needer.info.runpath.length === 0 ? expand(needer.info.rpath) : []),
    ...expand(needer.info.runpath),
    ...LIBRARY_DIRS,
  ];
  for (const dir of dirs) {
    const path = `${dir}/${name}`;
    if (fs.regularFile(path)) return fs.resolve(path);
  }
  return undefined;
}

/**
 * Checks that each ELF file's interpreter and DT_NEEDED libraries can be
 * found, and walks each program's dependency closure.
 *
 * @returns every shared library, with the programs that load it.
 */
function findLoadedLibraries(
  fs: Rootfs,
  elf: Map<string, ElfInfo>,
  findings: Finding[],
): Library[] {
  const libraries = new Map<string, Library>();
  for (const [path, info] of elf) {
    if (isLibrary(path, info)) {
      libraries.set(path, { path, neededAs: [], loadedBy: [] });
    }
  }

  // Every ELF file, loaded or not, must find what it needs.
  for (const [path, info] of elf) {
    if (info.interpreter && !fs.regularFile(info.interpreter)) {
      findings.push({
        check: "needed-library",
        path,
        message: `names the interpreter "${info.interpreter}", which is not ` +
          `in the image`,
      });
    }
    for (const name of info.needed) {
      if (findLibrary(fs, name, { path, info })) continue;
      findings.push({
        check: "needed-library",
        path,
        message: `needs "${name}", which is in none of ` +
          `${[...info.rpath, ...info.runpath, ...LIBRARY_DIRS].join(", ")}`,
      });
    }
  }

  // Each program's closure: its interpreter, then DT_NEEDED, transitively.
  for (const [program, info] of elf) {
    if (isLibrary(program, info)) continue;
    const queue: { path: string; info: ElfInfo }[] = [{ path: program, info }];
    const seen = new Set<string>([program]);
    const reach = (name: string, path: string | undefined) => {
      const library = path === undefined ? undefined : libraries.get(path);
      if (!library || !path) return;
      if (!library.neededAs.includes(name)) library.neededAs.push(name);
      if (!library.loadedBy.includes(program)) library.loadedBy.push(program);
      if (seen.has(path)) return;
      seen.add(path);
      queue.push({ path, info: elf.get(path)! });
    };
    if (info.interpreter) {
      reach(info.interpreter, fs.resolve(info.interpreter));
    }
    for (let next = queue.shift(); next; next = queue.shift()) {
      for (const name of next.info.needed) {
        reach(name, findLibrary(fs, name, next));
      }
    }
  }
  return [...libraries.values()].sort((a, b) => a.path < b.path ? -1 : 1);
}

/**
 * Marks the libraries that may stay unloaded: those glibc opens by name,
 * and those of the runtime base's packages, when the image's record of
 * the package is still the base's own. Only what the build adds must be
 * loaded: distroless cc ships whole packages, and a program added later
 * may need any of it.
 */
function allowUnloadedLibraries(
  fs: Rootfs,
  libraries: Library[],
  records: DpkgRecord[],
  baseRecords: DpkgRecord[],
): void {
  const imageText = new Map(
    records.map((record) => [record.file, record.text]),
  );
  const baseFiles = new Set<string>();
  for (const record of baseRecords) {
    if (imageText.get(record.file) !== record.text) continue;
    for (const path of record.files.keys()) {
      const canonical = fs.resolve(`/${path}`);
      if (canonical) baseFiles.add(canonical);
    }
  }
  for (const library of libraries) {
    if (DLOPEN_LIBRARIES.some((pattern) => pattern.test(library.path))) {
      library.allowance = "dlopen";
    } else if (baseFiles.has(library.path)) {
      library.allowance = "base";
    }
  }
}

/**
 * Checks that records and files agree: each regular file is claimed, with
 * its MD5, or is one the build writes; each claimed file is there.
 */
function checkRecords(
  fs: Rootfs,
  files: Entry[],
  md5: Map<string, string>,
  records: DpkgRecord[],
): Finding[] {
  const findings: Finding[] = [];
  const claims = new Map<string, { record: string; md5: string }[]>();
  for (const record of records) {
    for (const [path, sum] of record.files) {
      const canonical = fs.resolve(`/${path}`);
      if (!canonical || !fs.regularFile(canonical)) {
        findings.push({
          check: "dpkg-record",
          path: `/${path}`,
          message: `is listed by the dpkg record "${record.file}" but is ` +
            `not a file in the image`,
        });
        continue;
      }
      claims.set(canonical, [
        ...claims.get(canonical) ?? [],
        { record: record.file, md5: sum },
      ]);
    }
  }

  const unused = new Set(UNPACKAGED_FILES);
  for (const file of files) {
    const claimed = claims.get(file.path);
    const expected = UNPACKAGED_FILES.find((allowed) =>
      allowed.endsWith("/")
        ? file.path.startsWith(allowed)
        : file.path === allowed
    );
    if (expected) unused.delete(expected);
    if (claimed) {
      for (const claim of claimed) {
        if (claim.md5 === md5.get(file.path)) continue;
        findings.push({
          check: "dpkg-record",
          path: file.path,
          message: `differs from the dpkg record "${claim.record}" (MD5 ` +
            `${md5.get(file.path)}, recorded ${claim.md5})`,
        });
      }
    } else if (!expected) {
      findings.push({
        check: "dpkg-record",
        path: file.path,
        message: "is covered by no dpkg record (md5sums or Conffiles) and " +
          "is not one of the files the build writes",
      });
    }
  }
  for (const path of unused) {
    findings.push({
      check: "dpkg-record",
      path,
      message: "is listed as a file the build writes, but the image has no " +
        "such file",
    });
  }
  return findings;
}

/** Checks for setuid and setgid files and world-writable paths. */
function checkModes(fs: Rootfs): Finding[] {
  const findings: Finding[] = [];
  for (const entry of fs.entries.values()) {
    if (entry.kind === "symlink" || isDockerFile(entry)) continue;
    if (entry.kind !== "dir" && (entry.mode & 0o6000) !== 0) {
      const bits = [
        ...(entry.mode & 0o4000) ? ["setuid"] : [],
        ...(entry.mode & 0o2000) ? ["setgid"] : [],
      ];
      findings.push({
        check: "setuid",
        path: entry.path,
        message: `is ${bits.join(" and ")} (mode ${octal(entry.mode)})`,
      });
    }
    if ((entry.mode & 0o002) === 0) continue;
    if (entry.path === "/tmp" && (entry.mode & 0o1000) !== 0) continue;
    if (entry.path.startsWith("/tmp/")) continue;
    findings.push({
      check: "world-writable",
      path: entry.path,
      message: entry.path === "/tmp"
        ? `is world-writable without the sticky bit (mode ${octal(entry.mode)})`
        : `is world-writable (mode ${octal(entry.mode)})`,
    });
  }
  return findings;
}

/** Checks that the image's user, by number or by name, is not root. */
function checkUser(fs: Rootfs, user: string): Finding[] {
  const name = user.split(":")[0];
  const finding = (message: string): Finding[] => [
    { check: "user", path: "/etc/passwd", message },
  ];
  if (name === "") {
    return finding("the image config sets no User, so it runs as root");
  }
  if (/^[0-9]+$/.test(name)) {
    return Number(name) === 0
      ? finding(`the image runs as root (User "${user}")`)
      : [];
  }
  if (name === "root") {
    return finding(`the image runs as root (User "${user}")`);
  }

  // A user name is looked up as the runtime would: in the image's passwd.
  const passwd = fs.regularFile("/etc/passwd")
    ? Deno.readTextFileSync(fs.hostPath("/etc/passwd"))
    : "";
  const line = passwd.split("\n").find((l) => l.startsWith(`${name}:`));
  if (!line) {
    return finding(`User "${user}" is not in the image's /etc/passwd`);
  }
  return line.split(":")[2] === "0"
    ? finding(`User "${user}" has UID 0 in the image's /etc/passwd`)
    : [];
}

/**
 * Checks that the only executable files are the image's programs, Squid's
 * compiled helpers and the shared libraries.
 */
function checkExecutables(
  fs: Rootfs,
  files: Entry[],
  elf: Map<string, ElfInfo>,
  shebangs: Map<string, string>,
): Finding[] {
  const findings: Finding[] = [];
  for (const file of files) {
    if ((file.mode & 0o111) === 0) continue;
    const info = elf.get(file.path);
    if (info) {
      if (isLibrary(file.path, info)) continue;
      if (PROGRAMS.includes(file.path)) continue;
      if (dirname(file.path) === SQUID_HELPERS) continue;
      findings.push({
        check: "executable",
        path: file.path,
        message: "is an ELF program that is not Squid, a Squid helper, tini " +
          "or Deno",
      });
      continue;
    }
    const interpreter = shebangs.get(file.path);
    let message = "is executable but is neither ELF nor a script";
    if (interpreter !== undefined) {
      const present = fs.regularFile(interpreter) !== undefined;
      message = `is a script for "${interpreter}", which the image ` +
        (present ? "has" : "lacks");
    }
    findings.push({ check: "executable", path: file.path, message });
  }
  return findings;
}

/** Checks for shells, apt and dpkg, Perl and Python, by name. */
function checkForbiddenTools(fs: Rootfs): Finding[] {
  const findings: Finding[] = [];
  for (const entry of fs.entries.values()) {
    if (entry.kind === "dir") {
      if (FORBIDDEN_DIRS.test(entry.path)) {
        findings.push({
          check: "forbidden-tool",
          path: entry.path,
          message: "is a Perl or Python module tree",
        });
      }
      continue;
    }
    const name = basename(entry.path);
    for (const [pattern, what] of FORBIDDEN_NAMES) {
      if (!pattern.test(name)) continue;
      findings.push({
        check: "forbidden-tool",
        path: entry.path,
        message: `is named like ${what}`,
      });
    }
  }
  return findings;
}

/** Whether an entry is one Docker adds to every container. */
function isDockerFile(entry: Entry): boolean {
  if (DOCKER_TREES.some((tree) => entry.path.startsWith(tree))) return true;
  if (entry.path === "/etc/mtab") {
    return entry.kind === "symlink" && entry.target === "/proc/mounts";
  }
  return DOCKER_FILES.includes(entry.path) && entry.kind === "file" &&
    entry.size === 0;
}

/** A pattern matching exactly one of the space-separated alternatives. */
function oneOf(alternatives: string): RegExp {
  return new RegExp(`^(${alternatives.split(" ").join("|")})$`);
}

function octal(mode: number): string {
  return mode.toString(8).padStart(4, "0");
}
