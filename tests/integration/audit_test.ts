/**
 * The image audit (tests/audit/) on the built image's exported root
 * filesystem; the same audit on copies of it with faults planted, which it
 * must report; and the SBOM the build puts in the image, checked against
 * what the image holds.
 *
 * The runtime base the image was built on is exported too: the audit
 * allows the base's own libraries to stay unloaded. It is
 * CEPHALOPROXY_RUNTIME_IMAGE, by default the local base that
 * scripts/build-bases.sh builds; its layers must begin the image's.
 *
 * Exporting keeps setuid bits and owners only when run as root, as
 * scripts/test.sh is.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type AuditReport,
  auditRootfs,
  type Finding,
  formatFindings,
} from "../audit/audit.ts";
import { readRecords, STATUS_DIR } from "../audit/dpkg.ts";
import { exportImage, inspectImage, runOk } from "../audit/docker.ts";
import { DOCKER, IMAGE, SANITIZED } from "./_harness.ts";

const RUNTIME_IMAGE = Deno.env.get("CEPHALOPROXY_RUNTIME_IMAGE") ||
  "cephaloproxy-base/distroless-cc:debian13";

/** The purl form the SBOM promises for every Debian package. */
const DEBIAN_PURL =
  /^pkg:deb\/debian\/([^@?]+)@([^?]+)\?arch=([^&]+)&distro=debian-13$/;
const SBOM_PATH = "usr/share/cephaloproxy/sbom.spdx.json";
const ENTRYPOINT_DIR = "opt/cephaloproxy/src";
const SBOM_SCRIPT = fileURLToPath(
  new URL("../../scripts/sbom.ts", import.meta.url),
);

/** The parts of the SPDX JSON the tests read. */
interface Checksum {
  algorithm: string;
  checksumValue: string;
}
interface SpdxPackage {
  SPDXID: string;
  name: string;
  versionInfo?: string;
  checksums?: Checksum[];
  externalRefs?: { referenceType: string; referenceLocator: string }[];
}
interface Spdx {
  spdxVersion: string;
  creationInfo: { created: string };
  packages: SpdxPackage[];
  files: { fileName: string; checksums: Checksum[] }[];
  relationships: {
    spdxElementId: string;
    relationshipType: string;
    relatedSpdxElement: string;
  }[];
}

/** The image and its base, exported into a temp dir removed on dispose. */
interface Exported extends AsyncDisposable {
  dir: string;
  root: string;
  baseStatusDir: string;
  user: string;
}

async function exportForAudit(): Promise<Exported> {
  const image = await inspectImage(DOCKER, IMAGE);
  const base = await inspectImage(DOCKER, RUNTIME_IMAGE);
  assert.deepEqual(
    image.layers.slice(0, base.layers.length),
    base.layers,
    `"${IMAGE}" was not built on "${RUNTIME_IMAGE}"; set ` +
      `CEPHALOPROXY_RUNTIME_IMAGE to the RUNTIME_IMAGE it was built from`,
  );

  const dir = await Deno.makeTempDir({ prefix: "cephaloproxy-audit-" });
  const exported: Exported = {
    dir,
    root: join(dir, "image"),
    baseStatusDir: join(dir, "base", STATUS_DIR),
    user: image.user,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
  try {
    await exportImage(DOCKER, IMAGE, exported.root);
    await exportImage(DOCKER, RUNTIME_IMAGE, join(dir, "base"));
  } catch (err) {
    await exported[Symbol.asyncDispose]();
    throw err;
  }
  return exported;
}

/** Copies the exported image, modes and owners kept, for planting faults. */
async function copyRoot(exported: Exported, name: string): Promise<string> {
  const copy = join(exported.dir, name);
  await runOk("cp", ["-a", "--", exported.root, copy]);
  return copy;
}

function audit(exported: Exported, root = exported.root): Promise<AuditReport> {
  return auditRootfs(root, {
    baseStatusDir: exported.baseStatusDir,
    user: exported.user,
  });
}

/** Fails unless a finding of `check` about `path` mentions `text`. */
function assertFinding(
  findings: Finding[],
  expected: { check: Finding["check"]; path: string; text?: string },
): void {
  const found = findings.some((finding) =>
    finding.check === expected.check && finding.path === expected.path &&
    finding.message.includes(expected.text ?? "")
  );
  assert.ok(
    found,
    `expected a "${expected.check}" finding on ${expected.path}` +
      (expected.text ? ` mentioning ${expected.text}` : "") +
      `; the audit found:\n${formatFindings(findings)}`,
  );
}

function sha256(bytes: Uint8Array | string): string {
  return createHash("sha256").update(bytes).digest("hex");
}

Deno.test(
  "auditRootfs() finds nothing to report in the built image",
  SANITIZED,
  async () => {
    await using exported = await exportForAudit();
    const report = await audit(exported);

    assert.ok(report.elf.has("/usr/sbin/squid-openssl"), "no Squid found");
    assert.ok(report.records.length > 0, "no dpkg records found");
    assert.equal(
      report.findings.length,
      0,
      `the image fails the audit:\n${formatFindings(report.findings)}`,
    );
  },
);

Deno.test(
  {
    name: "auditRootfs() reads the dynamic entries readelf reads",
    ignore: !(await hasReadelf()),
    ...SANITIZED,
  },
  async () => {
    await using exported = await exportForAudit();
    const report = await audit(exported);
    const paths = [...report.elf.keys()].sort();
    assert.ok(paths.length > 100, `only ${paths.length} ELF files found`);

    const ours = paths.map((path) => describeElf(path, report));
    const theirs: string[] = [];
    for (let i = 0; i < paths.length; i += 64) {
      const batch = paths.slice(i, i + 64);
      const text = await runOk("readelf", [
        "--dynamic",
        "--program-headers",
        "--wide",
        ...batch.map((path) => join(exported.root, path)),
      ]);
      theirs.push(...parseReadelf(text, batch, exported.root));
    }
    assert.deepEqual(ours, theirs);
  },
);

Deno.test(
  "auditRootfs() reports a needed library taken out of the image",
  SANITIZED,
  async () => {
    await using exported = await exportForAudit();
    const before = await audit(exported);

    // A library Squid links directly and that the build itself adds.
    const squid = before.elf.get("/usr/sbin/squid-openssl")!;
    const library = before.libraries.find((library) =>
      !library.allowance &&
      library.neededAs.some((name) => squid.needed.includes(name))
    );
    assert.ok(library, "found no library the build adds for Squid");
    const soname = library.neededAs[0];

    const copy = await copyRoot(exported, "without-library");
    await Deno.remove(join(copy, library.path));
    const after = await audit(exported, copy);

    assertFinding(after.findings, {
      check: "needed-library",
      path: "/usr/sbin/squid-openssl",
      text: `"${soname}"`,
    });
    assert.ok(
      !before.findings.some((finding) => finding.message.includes(soname)),
      `the image already had a finding about ${soname}`,
    );
  },
);

Deno.test(
  "auditRootfs() reports a shared library that nothing loads",
  SANITIZED,
  async () => {
    await using exported = await exportForAudit();
    const before = await audit(exported);
    const library = before.libraries.find((library) => !library.allowance);
    assert.ok(library, "found no library the build adds");

    // A real library under a soname that nothing asks for.
    const extra = "/usr/lib/x86_64-linux-gnu/libcephaloproxy-unused.so.1";
    const copy = await copyRoot(exported, "extra-library");
    await Deno.copyFile(join(copy, library.path), join(copy, extra));
    const after = await audit(exported, copy);

    assertFinding(after.findings, {
      check: "unloaded-library",
      path: extra,
      text: "no program in the image loads",
    });
    assert.ok(
      !before.findings.some((finding) => finding.path === extra),
      `the image already had a finding about ${extra}`,
    );
  },
);

Deno.test(
  "auditRootfs() reports faults planted in a copy of the image",
  SANITIZED,
  async (t) => {
    await using exported = await exportForAudit();
    const copy = await copyRoot(exported, "planted");
    const plant = async (path: string, text: string, mode: number) => {
      await Deno.writeTextFile(join(copy, path), text);
      await Deno.chmod(join(copy, path), mode);
    };

    // One fault per check, each on a path of its own.
    await plant("/usr/sbin/bash", "not a shell\n", 0o644);
    await plant("/usr/bin/planted-setuid", "", 0o4644);
    await plant("/var/planted-open", "", 0o666);
    await plant("/usr/bin/planted.sh", "#!/bin/sh\necho planted\n", 0o755);
    await Deno.remove(join(copy, "/etc/squid/errorpage.css"));
    await plant("/etc/squid/errorpage.css", "/* changed */\n", 0o644);
    const findings = (await audit(exported, copy)).findings;

    await t.step("a file named like a shell", () => {
      assertFinding(findings, {
        check: "forbidden-tool",
        path: "/usr/sbin/bash",
        text: "a shell",
      });
    });
    await t.step("a setuid file", () => {
      assertFinding(findings, {
        check: "setuid",
        path: "/usr/bin/planted-setuid",
      });
    });
    await t.step("a world-writable file", () => {
      assertFinding(findings, {
        check: "world-writable",
        path: "/var/planted-open",
      });
    });
    await t.step("a script whose interpreter is absent", () => {
      assertFinding(findings, {
        check: "executable",
        path: "/usr/bin/planted.sh",
        text: `"/bin/sh", which the image lacks`,
      });
    });
    await t.step("files no dpkg record covers", () => {
      assertFinding(findings, {
        check: "dpkg-record",
        path: "/usr/bin/planted.sh",
        text: "covered by no dpkg record",
      });
    });
    await t.step("a packaged file changed after installation", () => {
      assertFinding(findings, {
        check: "dpkg-record",
        path: "/etc/squid/errorpage.css",
        text: "differs from the dpkg record",
      });
    });
    await t.step("a root user, by number or by name", async () => {
      for (const user of ["", "0:0", "root"]) {
        const report = await auditRootfs(exported.root, {
          baseStatusDir: exported.baseStatusDir,
          user,
        });
        assertFinding(report.findings, { check: "user", path: "/etc/passwd" });
      }
    });
  },
);

Deno.test(
  "the image's SBOM describes its Debian packages, Deno and entrypoint",
  SANITIZED,
  async (t) => {
    await using exported = await exportForAudit();
    const text = await Deno.readTextFile(join(exported.root, SBOM_PATH));
    const sbom: Spdx = JSON.parse(text);
    const packages = sbom.packages;
    assert.equal(sbom.spdxVersion, "SPDX-2.3");

    await t.step(
      "every Debian package of status.d, with its version",
      async () => {
        const records = await readRecords(join(exported.root, STATUS_DIR));
        const expected = records.map((r) => `${r.name} ${r.version} ${r.arch}`);
        const listed = packages
          .map((pkg) => ({ pkg, purl: purlOf(pkg) }))
          .filter(({ purl }) => purl.startsWith("pkg:deb/"))
          .map(({ pkg, purl }) => {
            const match = purl.match(DEBIAN_PURL);
            assert.ok(match, `unexpected Debian purl ${purl}`);
            const [name, version, arch] = match.slice(1).map(
              decodeURIComponent,
            );
            assert.equal(pkg.name, name, `purl ${purl} names another package`);
            assert.equal(
              pkg.versionInfo,
              version,
              `purl ${purl} has another version`,
            );
            return `${name} ${version} ${arch}`;
          });
        assert.deepEqual(listed.sort(), expected.sort());
      },
    );

    await t.step("the Deno the image runs", async () => {
      const output = await runOk(DOCKER, [
        "run",
        "--rm",
        "--entrypoint",
        "/usr/bin/deno",
        IMAGE,
        "--version",
      ]);
      const version = output.match(/^deno (\S+) /)?.[1];
      assert.ok(version, `cannot read a version in: ${output}`);
      const deno = packages.find((pkg) => pkg.name === "deno");
      assert.equal(deno?.versionInfo, version);
      assert.equal(purlOf(deno), `pkg:generic/deno@${version}`);
      assert.deepEqual(deno?.checksums, [{
        algorithm: "SHA256",
        checksumValue: sha256(
          await Deno.readFile(join(exported.root, "usr/bin/deno")),
        ),
      }]);
    });

    await t.step("every entrypoint file, with its SHA-256", async () => {
      const dir = join(exported.root, ENTRYPOINT_DIR);
      const present = (await listFiles(dir))
        .map((path) =>
          `${sha256(Deno.readFileSync(join(dir, path)))}  ./${path}\n`
        )
        .sort();
      const listed = sbom.files.map((file) => {
        const sum = file.checksums.find((c) => c.algorithm === "SHA256");
        return `${sum?.checksumValue}  ${file.fileName}\n`;
      }).sort();
      assert.deepEqual(listed, present);
      const entrypoint = packages.find((pkg) =>
        pkg.name === "cephaloproxy-entrypoint"
      );
      assert.deepEqual(entrypoint?.checksums, [{
        algorithm: "SHA256",
        checksumValue: sha256(present.join("")),
      }]);
    });

    await t.step("a DESCRIBES relationship to every package", () => {
      const described = sbom.relationships
        .filter((r) =>
          r.spdxElementId === "SPDXRef-DOCUMENT" &&
          r.relationshipType === "DESCRIBES"
        )
        .map((r) => r.relatedSpdxElement).sort();
      assert.deepEqual(described, packages.map((pkg) => pkg.SPDXID).sort());
    });

    await t.step(
      "the same document scripts/sbom.ts writes from the image's files",
      async () => {
        const root = exported.root;
        const version = packages.find((pkg) => pkg.name === "deno")
          ?.versionInfo;
        assert.ok(version, "the SBOM names no Deno version");
        const epoch = Date.parse(sbom.creationInfo.created) / 1000;
        const output = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--no-config",
            "--no-lock",
            "--no-remote",
            "--no-npm",
            `--allow-read=${root}`,
            "--allow-env=SOURCE_DATE_EPOCH",
            SBOM_SCRIPT,
            "--status-dir",
            join(root, STATUS_DIR),
            "--deno-version",
            version,
            "--deno-binary",
            join(root, "usr/bin/deno"),
            "--src",
            join(root, ENTRYPOINT_DIR),
          ],
          env: { SOURCE_DATE_EPOCH: String(epoch) },
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
        assert.equal(new TextDecoder().decode(output.stdout), text);
      },
    );
  },
);

/** Every regular file under `dir`, as relative paths. */
async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(join(dir, prefix))) {
    const path = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory) files.push(...await listFiles(dir, path));
    else files.push(path);
  }
  return files;
}

function purlOf(pkg: SpdxPackage | undefined): string {
  return pkg?.externalRefs?.find((ref) => ref.referenceType === "purl")
    ?.referenceLocator ?? "";
}

/** One comparable line per ELF file: interpreter and dynamic entries. */
function describeElf(path: string, report: AuditReport): string {
  const info = report.elf.get(path)!;
  return [
    path,
    `interp=${info.interpreter ?? ""}`,
    `soname=${info.soname ?? ""}`,
    `needed=${info.needed.join(",")}`,
    `rpath=${info.rpath.join(":")}`,
    `runpath=${info.runpath.join(":")}`,
  ].join(" ");
}

/** The same lines, from `readelf --dynamic --program-headers` output. */
function parseReadelf(text: string, paths: string[], root: string): string[] {
  const sections = text.split(/^File: /m);
  // With one file, readelf prints no "File:" header.
  const bodies = paths.length === 1 ? [text] : sections.slice(1);
  assert.equal(bodies.length, paths.length, "readelf skipped a file");
  return bodies.map((body, i) => {
    assert.ok(paths.length === 1 || body.startsWith(join(root, paths[i])));
    const all = (tag: string) =>
      [...body.matchAll(
        new RegExp(`\\(${tag}\\)\\s+[^\\[]*\\[([^\\]]*)\\]`, "g"),
      )]
        .map((m) => m[1]);
    return [
      paths[i],
      `interp=${
        body.match(/Requesting program interpreter: ([^\]]+)\]/)?.[1] ?? ""
      }`,
      `soname=${all("SONAME")[0] ?? ""}`,
      `needed=${all("NEEDED").join(",")}`,
      `rpath=${all("RPATH").join(":")}`,
      `runpath=${all("RUNPATH").join(":")}`,
    ].join(" ");
  });
}

async function hasReadelf(): Promise<boolean> {
  try {
    return (await new Deno.Command("readelf", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output()).success;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}
