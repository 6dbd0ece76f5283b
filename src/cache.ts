/**
 * Cache directories: decides whether `squid -z` must run, and compares
 * each `cache_dir` size with the space of its volume, as the legacy image
 * did.
 *
 * @module
 */

import { exists } from "./_fs.ts";
import { statfsSync } from "node:fs";
import { join } from "node:path";
import type { CacheDir } from "./required_paths.ts";

const MB = 1024 * 1024;
const MAX_OVERHEAD = 5 * 1024 * MB;

/**
 * Whether Squid still has to create this cache's structure. A UFS-family
 * cache is complete when its last first-level and second-level directories
 * exist (Squid creates them in order, so a run killed half-way is caught);
 * a rock cache when its database file exists.
 */
export function needsCreation(dir: CacheDir): boolean {
  if (dir.type === "rock") return !exists(join(dir.path, "rock"));
  if (!["ufs", "aufs", "diskd"].includes(dir.type)) return false;

  const last1 = hex(dir.l1 - 1);
  const last2 = hex(dir.l2 - 1);
  return !exists(join(dir.path, "00")) ||
    !exists(join(dir.path, last1, last2));
}

/**
 * Warns when a cache is configured larger than the usable space of its
 * volume (total minus 10 %, at most 5 GB of overhead), or uses under 60 %
 * of it.
 */
export function sizeWarnings(dir: CacheDir): string[] {
  const fs = statfsSync(dir.path);
  const total = fs.blocks * fs.bsize;
  const usable = total - Math.min(total * 0.1, MAX_OVERHEAD);
  const configured = dir.sizeMb * MB;
  const where = `cache_dir at ${dir.directive.file}:${dir.directive.line}`;

  if (configured > usable) {
    return [
      `Cache size ${dir.sizeMb} MB (${where}) exceeds the usable space of ` +
      `"${dir.path}" (${Math.floor(usable / MB)} MB); lower it or mount ` +
      "a larger volume",
    ];
  }
  if (configured < usable * 0.6) {
    return [
      `Cache size ${dir.sizeMb} MB (${where}) uses under 60% of the usable ` +
      `space of "${dir.path}" (${Math.floor(usable / MB)} MB); raise it ` +
      "to use the volume",
    ];
  }
  return [];
}

function hex(n: number): string {
  return n.toString(16).toUpperCase().padStart(2, "0");
}
