import assert from "node:assert/strict";
import { statfsSync } from "node:fs";
import { join } from "node:path";
import { needsCreation, sizeWarnings } from "../../src/cache.ts";
import { cacheDirs } from "../../src/required_paths.ts";
import { confFromLines, sanitized } from "./_helpers.ts";

const MB = 1024 * 1024;

/** The one cache_dir of a config made of `line`. */
function cacheDirOf(line: string) {
  const [dir] = cacheDirs(confFromLines(["http_port 3128", line]));
  return dir;
}

Deno.test(
  "needsCreation() is false only once the last L1/L2 directory exists",
  sanitized({ read: true, write: true }),
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "cache-test-" });
    try {
      const ufs = cacheDirOf(`cache_dir ufs ${dir} 100 16 256`);
      const steps: [string, string | undefined, boolean][] = [
        ["empty", undefined, true],
        ["first directories", "00/00", true],
        ["part of the tree", "0A/FF", true],
        ["last L1 without its last L2", "0F/FE", true],
        ["last L1 and L2", "0F/FF", false],
      ];
      for (const [name, made, expected] of steps) {
        await t.step(name, () => {
          if (made) Deno.mkdirSync(join(dir, made), { recursive: true });
          assert.equal(needsCreation(ufs), expected);
        });
      }
      await t.step("without 00", () => {
        Deno.removeSync(join(dir, "00"), { recursive: true });
        assert.equal(needsCreation(ufs), true);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "needsCreation() checks UFS-family types with their own L1/L2",
  sanitized({ read: true, write: true }),
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "cache-test-" });
    try {
      const cases: [string, string[]][] = [
        [`cache_dir aufs ${dir}/aufs 100 64 64`, ["00", "3F/3F"]],
        [`cache_dir diskd ${dir}/diskd 100 1 2`, ["00", "00/01"]],
        [`cache_dir ufs ${dir}/ufs 100`, ["00", "0F/FF"]],
      ];
      for (const [line, made] of cases) {
        await t.step(line.replace(dir, "DIR"), () => {
          const cache = cacheDirOf(line);
          Deno.mkdirSync(join(cache.path, made[0]), { recursive: true });
          assert.equal(needsCreation(cache), true);
          Deno.mkdirSync(join(cache.path, made[1]), { recursive: true });
          assert.equal(needsCreation(cache), false);
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "needsCreation() looks for the rock database file",
  sanitized({ read: true, write: true }),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "cache-test-" });
    try {
      const rock = cacheDirOf(`cache_dir rock ${dir} 1000 max-size=32768`);
      assert.equal(needsCreation(rock), true);

      Deno.writeTextFileSync(join(dir, "rock"), "");

      assert.equal(needsCreation(rock), false);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "needsCreation() leaves other cache types to Squid",
  sanitized({ read: true }),
  () => {
    const other = cacheDirOf("cache_dir coss /var/spool/none-here 100");
    assert.equal(needsCreation(other), false);
  },
);

Deno.test(
  "sizeWarnings() compares the size with the volume's usable space",
  sanitized({ read: true, write: true, sys: ["statfs"] }),
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "cache-test-" });
    try {
      const fs = statfsSync(dir);
      const totalMb = Math.floor((fs.blocks * fs.bsize) / MB);
      const where = "cache_dir at /etc/squid/squid.conf:2";
      const warn = (sizeMb: number) =>
        sizeWarnings(cacheDirOf(`cache_dir ufs ${dir} ${sizeMb} 16 256`));

      await t.step("a tiny cache uses under 60%", () => {
        const [warning, ...rest] = warn(1);
        assert.deepEqual(rest, []);
        assert.match(
          warning,
          new RegExp(
            `^Cache size 1 MB \\(${where}\\) uses under 60% of the usable ` +
              `space of "${dir}" \\(\\d+ MB\\); raise it to use the volume$`,
          ),
        );
      });
      await t.step("a cache larger than the volume exceeds it", () => {
        const [warning, ...rest] = warn(totalMb + 1);
        assert.deepEqual(rest, []);
        assert.match(
          warning,
          new RegExp(
            `^Cache size ${totalMb + 1} MB \\(${where}\\) exceeds the usable ` +
              `space of "${dir}" \\(\\d+ MB\\); lower it or mount a larger ` +
              "volume$",
          ),
        );
      });
      await t.step("85% of the volume fits without warning", () => {
        // Usable space is at least 90% of the total, so 85% is within it
        // and above 60% of it whatever the 5 GB overhead cap does.
        assert.deepEqual(warn(Math.floor(totalMb * 0.85)), []);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
