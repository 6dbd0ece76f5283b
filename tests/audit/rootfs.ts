/**
 * An image's root filesystem unpacked in a host directory, listed once and
 * looked at as the image would see itself: symbolic links are followed
 * inside the root, never into the host (an absolute link such as
 * `/lib -> usr/lib` or `/etc/mtab -> /proc/mounts` starts again at the
 * image root).
 *
 * @module
 */

import { join } from "node:path";

/** How many links one lookup may follow, as Linux's MAXSYMLINKS. */
const MAX_LINKS = 40;

/** One entry of the tree, by its absolute path in the image. */
export interface Entry {
  path: string;
  kind: "file" | "dir" | "symlink" | "other";
  /** Permission bits, with setuid, setgid and sticky. */
  mode: number;
  size: number;
  /** A link's target, as written. */
  target?: string;
}

/** A listed root filesystem. */
export class Rootfs {
  /** The host directory the image is unpacked in. */
  readonly root: string;
  /** Every entry but the root itself, by image path. */
  readonly entries: Map<string, Entry>;

  private constructor(root: string, entries: Map<string, Entry>) {
    this.root = root;
    this.entries = entries;
  }

  /** Lists every entry under `root`, without following links. */
  static async load(root: string): Promise<Rootfs> {
    const entries = new Map<string, Entry>();
    async function walk(dir: string): Promise<void> {
      for await (const item of Deno.readDir(join(root, dir))) {
        const path = `${dir}/${item.name}`;
        const info = await Deno.lstat(join(root, path));
        const kind = info.isSymlink
          ? "symlink"
          : info.isDirectory
          ? "dir"
          : info.isFile
          ? "file"
          : "other";
        const entry: Entry = {
          path,
          kind,
          mode: (info.mode ?? 0) & 0o7777,
          size: info.size,
        };
        if (kind === "symlink") {
          entry.target = await Deno.readLink(join(root, path));
        }
        entries.set(path, entry);
        if (kind === "dir") await walk(path);
      }
    }
    await walk("");
    return new Rootfs(root, entries);
  }

  /**
   * Resolves an image path to the entry it names, following links inside
   * the image (the last component's too).
   *
   * @returns the canonical path, or undefined when nothing is there.
   */
  resolve(path: string): string | undefined {
    const pending = path.split("/").filter((part) => part !== "");
    const current: string[] = [];
    let links = 0;
    while (pending.length > 0) {
      const part = pending.shift()!;
      if (part === ".") continue;
      if (part === "..") {
        current.pop();
        continue;
      }
      const candidate = `/${[...current, part].join("/")}`;
      const entry = this.entries.get(candidate);
      if (!entry) return undefined;
      if (entry.kind === "symlink") {
        if (++links > MAX_LINKS) return undefined;
        const target = entry.target!;
        pending.unshift(...target.split("/").filter((p) => p !== ""));
        if (target.startsWith("/")) current.length = 0;
        continue;
      }
      current.push(part);
    }
    return `/${current.join("/")}`;
  }

  /** Resolves `path` and returns its entry if it is a regular file. */
  regularFile(path: string): Entry | undefined {
    const canonical = this.resolve(path);
    const entry = canonical === undefined
      ? undefined
      : this.entries.get(canonical);
    return entry?.kind === "file" ? entry : undefined;
  }

  /** The host path of an image path, for reading it. */
  hostPath(path: string): string {
    return join(this.root, path);
  }
}
