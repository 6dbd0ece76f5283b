import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  buildSbom,
  createdFromEpoch,
  debianPurl,
  generateSbom,
  parseControl,
  readSourceTree,
  readStatusDirs,
  type SbomInputs,
} from "../../scripts/sbom.ts";

const SCRIPT = fileURLToPath(new URL("../../scripts/sbom.ts", import.meta.url));
/** Where Deno.makeTempDir() puts the fixtures; the tests reach no further. */
const TMP = Deno.env.get("TMPDIR") || "/tmp";

function sanitized(
  permissions: Deno.PermissionOptionsObject,
): Omit<Deno.TestDefinition, "fn" | "name"> {
  return {
    permissions,
    sanitizeOps: true,
    sanitizeResources: true,
    sanitizeExit: true,
  };
}

const FILES = sanitized({ read: [TMP], write: [TMP] });

/** Two status.d directories as the sbom stage sees them, and a src dir. */
const RECORDS: Record<string, string> = {
  // Cut Description: its continuation lines trail under Homepage.
  "base/libc6": "Package: libc6\nSource: glibc\nVersion: 2.41-12+deb13u5\n" +
    "Architecture: amd64\n" +
    "Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\n" +
    "Homepage: https://www.gnu.org/software/libc/libc.html\n" +
    " Contains the standard libraries.\nStatus: install ok installed\n",
  "base/libc6.md5sums": "0123456789abcdef0123456789abcdef  usr/lib/libc.so.6\n",
  "base/tzdata": "Package: tzdata\nVersion: 2026f-0+deb13u1\n" +
    "Architecture: all\n",
  "squid/zlib1g": "Package: zlib1g\nSource: zlib (1:1.3.dfsg+really1.3.1-1)\n" +
    "Version: 1:1.3.dfsg+really1.3.1-1+b1\nArchitecture: amd64\n" +
    "Conffiles:\n /etc/x.conf 0123456789abcdef0123456789abcdef\n",
  // The squid stage's tzdata record replaces the base's, as in the image.
  "squid/tzdata": "Package: tzdata\nVersion: 2026g-1\nArchitecture: all\n",
};
const SOURCES: Record<string, string> = {
  "src/main.ts": "console.log('main');\n",
  "src/lib/_fs.ts": "export {};\n",
  "src/default-squid.conf": "http_port 3128\n",
};

/** Writes the fixtures into a new temp dir; the caller removes it. */
async function writeFixtures(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "cephaloproxy-sbom-" });
  for (const [name, text] of Object.entries({ ...RECORDS, ...SOURCES })) {
    await Deno.mkdir(dirname(join(dir, name)), { recursive: true });
    await Deno.writeTextFile(join(dir, name), text);
  }
  return dir;
}

function sha(algorithm: string, text: string): string {
  return createHash(algorithm).update(text).digest("hex");
}

function inputs(changes: Partial<SbomInputs> = {}): SbomInputs {
  return {
    debianPackages: [{ name: "libc6", version: "2.41-12", arch: "amd64" }],
    denoVersion: "2.9.6",
    denoSha256: "ab".repeat(32),
    sourceFiles: [{
      path: "main.ts",
      sha1: "1".repeat(40),
      sha256: "2".repeat(64),
    }],
    created: "1970-01-01T00:00:00Z",
    ...changes,
  };
}

Deno.test("parseControl() joins continuation lines to their field", () => {
  const [first, second] = parseControl(
    "Package: a\nDescription: short\n long\n\tmore\n\nPackage: b\n",
  );
  assert.equal(first.get("Package"), "a");
  assert.equal(first.get("Description"), "short\n long\n\tmore");
  assert.equal(second.get("Package"), "b");
});

Deno.test("parseControl() rejects a line that is not a field", async (t) => {
  for (const text of [" orphan continuation\n", "Package: a\nno colon\n"]) {
    await t.step(JSON.stringify(text), () => {
      assert.throws(() => parseControl(text), SyntaxError);
    });
  }
});

Deno.test(
  "readStatusDirs() reads each record once, later directories winning",
  FILES,
  async () => {
    const dir = await writeFixtures();
    try {
      const packages = await readStatusDirs([
        join(dir, "base"),
        join(dir, "squid"),
      ]);
      assert.deepEqual(packages, [
        {
          name: "libc6",
          version: "2.41-12+deb13u5",
          arch: "amd64",
          source: { name: "glibc", version: "2.41-12+deb13u5" },
          maintainer: "GNU Libc Maintainers <debian-glibc@lists.debian.org>",
          homepage: "https://www.gnu.org/software/libc/libc.html",
        },
        { name: "tzdata", version: "2026g-1", arch: "all" },
        {
          name: "zlib1g",
          version: "1:1.3.dfsg+really1.3.1-1+b1",
          arch: "amd64",
          source: { name: "zlib", version: "1:1.3.dfsg+really1.3.1-1" },
        },
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "readStatusDirs() rejects a record without a version",
  FILES,
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "cephaloproxy-sbom-" });
    try {
      await Deno.writeTextFile(
        join(dir, "x"),
        "Package: x\nArchitecture: all\n",
      );
      await assert.rejects(() => readStatusDirs([dir]), TypeError);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("debianPurl() keeps the epoch and encodes plus signs", () => {
  assert.equal(
    debianPurl({
      name: "libstdc++6",
      version: "1:14.2.0-19+b1",
      arch: "amd64",
    }),
    "pkg:deb/debian/libstdc%2B%2B6@1:14.2.0-19%2Bb1?arch=amd64&distro=debian-13",
  );
});

Deno.test("createdFromEpoch() honours SOURCE_DATE_EPOCH", async (t) => {
  await t.step("unset or empty gives the epoch", () => {
    assert.equal(createdFromEpoch(undefined), "1970-01-01T00:00:00Z");
    assert.equal(createdFromEpoch(""), "1970-01-01T00:00:00Z");
  });
  await t.step("seconds give that time in UTC", () => {
    assert.equal(createdFromEpoch("1764780000"), "2025-12-03T16:40:00Z");
  });
  for (const value of ["-1", "1.5", "yesterday", "1e9"]) {
    await t.step(`"${value}" is refused`, () => {
      assert.throws(() => createdFromEpoch(value), RangeError);
    });
  }
});

Deno.test(
  "readSourceTree() lists every file under the dir with its checksums",
  FILES,
  async () => {
    const dir = await writeFixtures();
    try {
      const files = await readSourceTree(join(dir, "src"));
      assert.deepEqual(
        files,
        ["default-squid.conf", "lib/_fs.ts", "main.ts"].map((path) => ({
          path,
          sha1: sha("sha1", SOURCES[`src/${path}`]),
          sha256: sha("sha256", SOURCES[`src/${path}`]),
        })),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("buildSbom() describes every package from the document", () => {
  const document = buildSbom(inputs());
  const ids = document.packages.map((pkg) => pkg.SPDXID);
  assert.deepEqual(ids, [
    "SPDXRef-Package-deb-libc6-amd64",
    "SPDXRef-Package-deno",
    "SPDXRef-Package-cephaloproxy-entrypoint",
  ]);
  const described = document.relationships
    .filter((r) => r.relationshipType === "DESCRIBES")
    .map((r) => [r.spdxElementId, r.relatedSpdxElement]);
  assert.deepEqual(described, ids.map((id) => ["SPDXRef-DOCUMENT", id]).sort());
});

Deno.test("buildSbom() checksums the entrypoint and each of its files", () => {
  const files = [
    { path: "b.ts", sha1: "b".repeat(40), sha256: "2".repeat(64) },
    { path: "a.ts", sha1: "a".repeat(40), sha256: "1".repeat(64) },
  ];
  const document = buildSbom(inputs({ sourceFiles: files }));
  const entrypoint = document.packages.find((pkg) =>
    pkg.name === "cephaloproxy-entrypoint"
  );
  assert.deepEqual(entrypoint?.checksums, [{
    algorithm: "SHA256",
    checksumValue: sha(
      "sha256",
      `${"1".repeat(64)}  ./a.ts\n${"2".repeat(64)}  ./b.ts\n`,
    ),
  }]);
  // SPDX 2.3, clause 7.9: SHA-1 over the sorted SHA-1s of the files.
  assert.deepEqual(entrypoint?.packageVerificationCode, {
    packageVerificationCodeValue: sha("sha1", "a".repeat(40) + "b".repeat(40)),
  });
  assert.deepEqual(
    document.files.map((file) => file.fileName),
    ["./a.ts", "./b.ts"],
  );
  assert.equal(
    document.relationships.filter((r) => r.relationshipType === "CONTAINS")
      .length,
    2,
  );
});

Deno.test("buildSbom() gives the same text for the same inputs only", () => {
  const text = (changes: Partial<SbomInputs>) =>
    JSON.stringify(buildSbom(inputs(changes)));
  assert.equal(text({}), text({}));
  const namespace = (changes: Partial<SbomInputs>) =>
    buildSbom(inputs(changes)).documentNamespace;
  assert.match(
    namespace({}),
    /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-/,
  );
  assert.notEqual(namespace({}), namespace({ denoVersion: "2.9.7" }));
  assert.notEqual(
    namespace({}),
    namespace({ created: "2025-01-01T00:00:00Z" }),
  );
});

Deno.test(
  "generateSbom() reads the inputs the command line names",
  sanitized({ read: [TMP], write: [TMP], env: ["SOURCE_DATE_EPOCH"] }),
  async () => {
    const dir = await writeFixtures();
    try {
      const text = await generateSbom([
        "--status-dir",
        join(dir, "base"),
        "--status-dir",
        join(dir, "squid"),
        "--deno-version",
        "2.9.6",
        "--deno-binary",
        join(dir, "src/main.ts"),
        "--src",
        join(dir, "src"),
      ]);
      const document = JSON.parse(text);
      assert.deepEqual(
        document.packages.map((pkg: { name: string }) => pkg.name),
        ["libc6", "tzdata", "zlib1g", "deno", "cephaloproxy-entrypoint"],
      );
      assert.equal(
        document.packages[3].checksums[0].checksumValue,
        sha("sha256", SOURCES["src/main.ts"]),
      );
      assert.equal(document.files.length, 3);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "sbom.ts prints the document, and one line and exit code 1 on bad input",
  sanitized({ read: [TMP], write: [TMP], run: [Deno.execPath()] }),
  async (t) => {
    const dir = await writeFixtures();
    const sbom = (args: string[], epoch: string) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--no-config",
          "--no-lock",
          `--allow-read=${dir}`,
          "--allow-env=SOURCE_DATE_EPOCH",
          SCRIPT,
          ...args,
        ],
        env: { SOURCE_DATE_EPOCH: epoch, NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
    const args = [
      "--status-dir",
      join(dir, "base"),
      "--deno-version",
      "2.9.6",
      "--src",
      join(dir, "src"),
    ];
    try {
      await t.step("prints the document on stdout", async () => {
        const output = await sbom(args, "1764780000");
        const document = JSON.parse(new TextDecoder().decode(output.stdout));
        assert.equal(output.code, 0);
        assert.equal(document.creationInfo.created, "2025-12-03T16:40:00Z");
        assert.equal(document.spdxVersion, "SPDX-2.3");
      });
      await t.step("refuses a missing --deno-version", async () => {
        const output = await sbom(args.slice(0, 2).concat(args.slice(4)), "");
        assert.equal(output.code, 1);
        assert.equal(output.stdout.length, 0);
        assert.match(
          new TextDecoder().decode(output.stderr),
          /^sbom\.ts: Cannot write the SBOM: [^\n]*--deno-version[^\n]*\n$/,
        );
      });
      await t.step("refuses a bad SOURCE_DATE_EPOCH", async () => {
        const output = await sbom(args, "soon");
        assert.equal(output.code, 1);
        assert.match(
          new TextDecoder().decode(output.stderr),
          /^sbom\.ts: Cannot use SOURCE_DATE_EPOCH="soon"/,
        );
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
