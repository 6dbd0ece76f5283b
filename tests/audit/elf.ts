/**
 * Reads what the dynamic loader needs from an ELF file: its type, its
 * interpreter, and the DT_NEEDED, DT_SONAME, DT_RPATH and DT_RUNPATH
 * entries of its dynamic section. Only 64-bit little-endian files are
 * read, which is every ELF file of an x86-64 image; see the System V ABI,
 * "Object Files" and "Dynamic Linking" (elf(5) has the same layout).
 *
 * @module
 */

/** ELF file types (`e_type`). */
export const ET_EXEC = 2;
export const ET_DYN = 3;

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_SONAME = 14n;
const DT_RPATH = 15n;
const DT_RUNPATH = 29n;

/** What the dynamic loader reads from one ELF file. */
export interface ElfInfo {
  /** `e_type`: {@linkcode ET_EXEC}, {@linkcode ET_DYN}, or another. */
  type: number;
  /** The PT_INTERP path, such as `/lib64/ld-linux-x86-64.so.2`. */
  interpreter?: string;
  needed: string[];
  soname?: string;
  /** DT_RPATH entries, split at colons. */
  rpath: string[];
  /** DT_RUNPATH entries, split at colons. */
  runpath: string[];
}

interface Segment {
  type: number;
  offset: number;
  vaddr: number;
  filesz: number;
}

/** Whether `bytes` start with the ELF magic number. */
export function isElf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 &&
    bytes[2] === 0x4c && bytes[3] === 0x46;
}

/**
 * Parses the headers and dynamic section of an ELF file.
 *
 * @throws {RangeError} for a file that is not 64-bit little-endian ELF, or
 * whose headers point outside it.
 */
export function readElf(bytes: Uint8Array): ElfInfo {
  if (!isElf(bytes) || bytes[4] !== 2 || bytes[5] !== 1) {
    throw new RangeError(
      "Cannot read the ELF file: only 64-bit little-endian ELF is supported",
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const info: ElfInfo = {
    type: view.getUint16(16, true),
    needed: [],
    rpath: [],
    runpath: [],
  };

  // Program headers: PT_INTERP names the loader, PT_DYNAMIC the entries,
  // and PT_LOAD maps the string table's address to a file offset.
  const phoff = number(view.getBigUint64(32, true));
  const phentsize = view.getUint16(54, true);
  const phnum = view.getUint16(56, true);
  const segments: Segment[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    segments.push({
      type: view.getUint32(at, true),
      offset: number(view.getBigUint64(at + 8, true)),
      vaddr: number(view.getBigUint64(at + 16, true)),
      filesz: number(view.getBigUint64(at + 32, true)),
    });
  }
  const interp = segments.find((segment) => segment.type === PT_INTERP);
  if (interp) info.interpreter = cString(bytes, interp.offset);
  const dynamic = segments.find((segment) => segment.type === PT_DYNAMIC);
  if (!dynamic) return info;

  // Dynamic entries: (tag, value) pairs of 8 bytes each, up to DT_NULL.
  const entries: [bigint, bigint][] = [];
  for (
    let at = dynamic.offset;
    at + 16 <= dynamic.offset + dynamic.filesz;
    at += 16
  ) {
    const tag = view.getBigInt64(at, true);
    if (tag === DT_NULL) break;
    entries.push([tag, view.getBigUint64(at + 8, true)]);
  }
  const strtab = entries.find(([tag]) => tag === DT_STRTAB);
  if (!strtab) return info;
  const strtabOffset = fileOffset(segments, number(strtab[1]));
  for (const [tag, value] of entries) {
    const text = () => cString(bytes, strtabOffset + number(value));
    if (tag === DT_NEEDED) info.needed.push(text());
    else if (tag === DT_SONAME) info.soname = text();
    else if (tag === DT_RPATH) info.rpath.push(...text().split(":"));
    else if (tag === DT_RUNPATH) info.runpath.push(...text().split(":"));
  }
  return info;
}

/** Maps a virtual address to its offset in the file through PT_LOAD. */
function fileOffset(segments: Segment[], vaddr: number): number {
  const load = segments.find((segment) =>
    segment.type === PT_LOAD && vaddr >= segment.vaddr &&
    vaddr < segment.vaddr + segment.filesz
  );
  if (!load) {
    throw new RangeError(
      `Cannot read the ELF file: address 0x${vaddr.toString(16)} of its ` +
        `string table is in no loaded segment`,
    );
  }
  return vaddr - load.vaddr + load.offset;
}

function cString(bytes: Uint8Array, offset: number): string {
  const end = bytes.indexOf(0, offset);
  if (offset >= bytes.length || end < 0) {
    throw new RangeError(
      `Cannot read the ELF file: a string at offset ${offset} runs past ` +
        `its end`,
    );
  }
  return new TextDecoder().decode(bytes.subarray(offset, end));
}

function number(value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new RangeError(
      `Cannot read the ELF file: offset ${value} is out of range`,
    );
  }
  return Number(value);
}
