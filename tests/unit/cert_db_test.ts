import assert from "node:assert/strict";
import { join } from "node:path";
import { ensureCertDb, isCertDbComplete } from "../../src/cert_db.ts";
import {
  fixture,
  listDir,
  pathExists,
  rejectsError,
  sanitized,
} from "./_helpers.ts";

const PERMISSIONS = { read: true, write: true, run: true };

/** Copies a fake certgen from the fixtures into `dir/bin/` as executable. */
function installCertgen(dir: string, name: string): string {
  const bin = join(dir, "bin");
  Deno.mkdirSync(bin, { recursive: true });
  const path = join(bin, name);
  Deno.copyFileSync(fixture(name), path);
  Deno.chmodSync(path, 0o755);
  return path;
}

/** The argument lines the fake certgen recorded. */
function certgenCalls(dir: string): string[] {
  const calls = join(dir, "bin/calls");
  if (!pathExists(calls)) return [];
  return Deno.readTextFileSync(calls).trimEnd().split("\n");
}

function mode(path: string): number {
  return Deno.statSync(path).mode! & 0o777;
}

Deno.test(
  "ensureCertDb() creates an absent database, writable by group 0",
  sanitized(PERMISSIONS),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "cert-db-test-" });
    try {
      const certgen = installCertgen(dir, "fake_certgen.sh");
      const state = join(dir, "state");
      Deno.mkdirSync(state);
      const db = join(state, "ssl_db");

      const result = await ensureCertDb(certgen, db, "16MB");

      assert.equal(result, "created");
      assert.deepEqual(listDir(state), ["ssl_db"]);
      assert.deepEqual(listDir(db), ["certs", "index.txt", "size"]);
      assert.equal(Deno.readTextFileSync(join(db, "size")), "16MB\n");
      assert.equal(mode(db), 0o770);
      assert.equal(mode(join(db, "certs")), 0o770);
      assert.equal(mode(join(db, "index.txt")), 0o660);
      assert.equal(mode(join(db, "size")), 0o660);
      assert.equal(isCertDbComplete(db), true);
      const [call] = certgenCalls(dir);
      assert.match(call, /^-c -s .*\/state\/\.ssl_db\.cephaloproxy-init-\d+ /);
      assert.ok(call.endsWith(" -M 16MB"), call);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "ensureCertDb() leaves a complete database alone",
  sanitized(PERMISSIONS),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "cert-db-test-" });
    try {
      const certgen = installCertgen(dir, "fake_certgen.sh");
      const db = join(dir, "ssl_db");
      Deno.mkdirSync(join(db, "certs"), { recursive: true });
      Deno.writeTextFileSync(join(db, "index.txt"), "V\t300101000000Z\n");
      Deno.writeTextFileSync(join(db, "size"), "4096\n");
      Deno.chmodSync(db, 0o700);

      const result = await ensureCertDb(certgen, db, "4MB");

      assert.equal(result, "present");
      assert.deepEqual(certgenCalls(dir), []);
      assert.equal(
        Deno.readTextFileSync(join(db, "index.txt")),
        "V\t300101000000Z\n",
      );
      assert.equal(mode(db), 0o700);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "ensureCertDb() rebuilds a half-created database in place",
  sanitized(PERMISSIONS),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "cert-db-test-" });
    try {
      const certgen = installCertgen(dir, "fake_certgen.sh");
      const db = join(dir, "ssl_db");
      Deno.mkdirSync(db);
      Deno.writeTextFileSync(join(db, "index.txt"), "half written");

      const result = await ensureCertDb(certgen, db, "4MB");

      assert.equal(result, "repaired");
      assert.deepEqual(listDir(db), ["certs", "index.txt", "size"]);
      assert.equal(Deno.readTextFileSync(join(db, "index.txt")), "");
      assert.equal(Deno.readTextFileSync(join(db, "size")), "4MB\n");
      assert.deepEqual(listDir(dir), ["bin", "ssl_db"]);
      assert.equal(mode(db), 0o770);
      assert.equal(mode(join(db, "index.txt")), 0o660);
      assert.match(certgenCalls(dir)[0], /\/ssl_db\/\.cephaloproxy-init-\d+ /);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "ensureCertDb() reports the helper's output and leaves no temporary dir",
  sanitized(PERMISSIONS),
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "cert-db-test-" });
    try {
      const certgen = installCertgen(dir, "failing_certgen.sh");
      const message = `Cannot create the SSL certificate database with ` +
        `${certgen}: Initialization SSL db... security_file_certgen: ` +
        "Cannot create ssl_db: Permission denied";

      await t.step("when creating", async () => {
        const state = join(dir, "state");
        Deno.mkdirSync(state);
        const err = await rejectsError(
          () => ensureCertDb(certgen, join(state, "ssl_db"), "4MB"),
          Error,
        );
        assert.equal(err.message, message);
        assert.deepEqual(listDir(state), []);
      });
      await t.step("when repairing", async () => {
        const db = join(dir, "ssl_db");
        Deno.mkdirSync(join(db, "certs"), { recursive: true });
        const err = await rejectsError(
          () => ensureCertDb(certgen, db, "4MB"),
          Error,
        );
        assert.equal(err.message, message);
        assert.deepEqual(listDir(db), ["certs"]);
      });
      assert.equal(certgenCalls(dir).length, 2);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "isCertDbComplete() needs certs, index.txt and size",
  sanitized({ read: true, write: true }),
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "cert-db-test-" });
    try {
      await t.step("absent directory", () => {
        assert.equal(isCertDbComplete(join(dir, "none")), false);
      });
      const steps: [string, () => void, boolean][] = [
        ["empty", () => {}, false],
        ["certs/", () => Deno.mkdirSync(join(dir, "certs")), false],
        [
          "index.txt",
          () => Deno.writeTextFileSync(`${dir}/index.txt`, ""),
          false,
        ],
        ["size", () => Deno.writeTextFileSync(`${dir}/size`, "0\n"), true],
      ];
      for (const [name, add, complete] of steps) {
        await t.step(`after adding ${name}`, () => {
          add();
          assert.equal(isCertDbComplete(dir), complete);
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
