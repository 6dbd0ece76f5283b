/**
 * Helpers for the deployment, documentation and custom-CA tests, on top of
 * `_harness.ts` (Docker, waits, logs, ports) and `_certs.ts`: commands
 * without a deadline, plain HTTP and raw proxy requests, commands and
 * files quoted in docs/, and a reader for the YAML subset that deploy/ is
 * written in.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  docker as runDocker,
  dockerOk,
  type Output,
  run as runCommand,
  waitFor,
} from "./_harness.ts";

/** The repository root. */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** The image under test; by default the one the docs build and name. */
export const IMAGE = Deno.env.get("CEPHALOPROXY_IMAGE") ?? "cephaloproxy:dev";

/** The builder base that `scripts/build-bases.sh` makes locally. */
export const LOCAL_BUILDER = "cephaloproxy-base/debian:trixie-slim";

/**
 * Runs a host command to completion with no deadline, as image builds and
 * Compose may take long; never throws for a non-zero exit.
 */
export function run(
  cmd: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<Output> {
  return runCommand(cmd, args, { ...options, timeoutMs: Infinity });
}

/**
 * Runs the Docker client with BuildKit on and no deadline, and returns its
 * stdout, trimmed.
 *
 * @throws {Error} with Docker's stderr when it exits non-zero.
 */
export function docker(...args: string[]): Promise<string> {
  return dockerOk(args, {
    env: { DOCKER_BUILDKIT: "1" },
    timeoutMs: Infinity,
  });
}

/** Runs Docker and ignores failure; for cleanup in `finally` blocks. */
export async function dockerQuiet(...args: string[]): Promise<void> {
  await runDocker(args, { timeoutMs: Infinity });
}

/**
 * Runs `origin.ts` from `options.dir` with the image's Deno in a detached
 * container `name`, the dir mounted read-only at /srv; `options.args` go
 * before the mount, e.g. a network and an alias.
 */
export async function runOriginScript(
  name: string,
  options: { dir: string; args?: string[] },
): Promise<void> {
  await docker(
    "run",
    "-d",
    "--name",
    name,
    ...(options.args ?? []),
    "-v",
    `${options.dir}:/srv:ro`,
    "--entrypoint",
    "/usr/bin/deno",
    IMAGE,
    "run",
    "--allow-net",
    "--allow-read=/srv",
    "/srv/origin.ts",
  );
}

/** A name no other test run uses, for containers, networks and volumes. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

/** A temporary directory that a container user can read. */
export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  await Deno.chmod(dir, 0o755);
  return dir;
}

/** Writes a file readable by everyone (containers run as UID 1000). */
export async function writeReadable(path: string, text: string) {
  await Deno.mkdir(dirname(path), { recursive: true, mode: 0o755 });
  await Deno.writeTextFile(path, text);
  await Deno.chmod(path, 0o644);
}

/** A parsed HTTP response. */
export interface HttpReply {
  status: number;
  headers: Headers;
  body: string;
}

/** GET on a plain URL; undefined when nothing answers yet. */
export async function httpGet(url: string): Promise<HttpReply | undefined> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(3000) });
    return {
      status: response.status,
      headers: response.headers,
      body: await response.text(),
    };
  } catch (err) {
    if (err instanceof TypeError || err instanceof DOMException) {
      return undefined;
    }
    throw err;
  }
}

/** Waits until `url` answers 200 and returns the reply. */
export function waitFor200(url: string, timeoutMs = 60_000) {
  return waitFor(`200 from ${url}`, async () => {
    const reply = await httpGet(url);
    return reply?.status === 200 ? reply : undefined;
  }, timeoutMs);
}

/**
 * Sends `GET <absoluteUrl> HTTP/1.1` to a proxy over a plain TCP
 * connection, the way a browser configured for the proxy does. For an
 * `https://` URL Squid itself opens the TLS connection to the origin (no
 * CONNECT tunnel), so its certificate checks apply.
 */
export async function proxyRequest(
  proxy: { hostname: string; port: number },
  absoluteUrl: string,
): Promise<HttpReply> {
  const url = new URL(absoluteUrl);
  const conn = await Deno.connect(proxy);
  try {
    const request = `GET ${absoluteUrl} HTTP/1.1\r\nHost: ${url.host}\r\n` +
      "Connection: close\r\n\r\n";
    await conn.write(new TextEncoder().encode(request));
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(16 * 1024);
    const deadline = AbortSignal.timeout(20_000);
    while (!deadline.aborted) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
    return parseResponse(new TextDecoder().decode(concat(chunks)));
  } finally {
    conn.close();
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((sum, c) => sum + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

function parseResponse(text: string): HttpReply {
  const end = text.indexOf("\r\n\r\n");
  if (end === -1) throw new SyntaxError(`Not an HTTP response: "${text}"`);
  const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
  const headers = new Headers();
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  let body = text.slice(end + 4);
  if (headers.get("transfer-encoding")?.includes("chunked")) {
    body = dechunk(body);
  }
  return { status: Number(statusLine.split(" ")[1]), headers, body };
}

function dechunk(text: string): string {
  let out = "";
  let rest = text;
  while (true) {
    const lineEnd = rest.indexOf("\r\n");
    const size = parseInt(rest.slice(0, lineEnd), 16);
    if (!size) return out;
    out += rest.slice(lineEnd + 2, lineEnd + 2 + size);
    rest = rest.slice(lineEnd + 4 + size);
  }
}

// ------------------------------------------------------------- documents

/**
 * Returns the fenced code block that follows `<!-- test: id -->` in a
 * file under docs/ (or the README), so tests run what the docs show.
 *
 * @throws {Error} when the marker or its block is missing.
 */
export function docBlock(doc: string, id: string): string {
  const text = Deno.readTextFileSync(join(ROOT, doc));
  const marker = `<!-- test: ${id} -->`;
  const at = text.indexOf(marker);
  if (at === -1) throw new Error(`No "${marker}" in ${doc}`);
  const match = /```[a-z]*\n([\s\S]*?)```/.exec(text.slice(at));
  if (!match) throw new Error(`No code block after "${marker}" in ${doc}`);
  return match[1];
}

/**
 * Splits a documented shell command into words: backslash-newline joins
 * lines, single and double quotes group; nothing is expanded.
 */
export function shellWords(command: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: string | undefined;
  const text = command.replace(/\\\n\s*/g, " ");
  for (const c of text) {
    if (quote) {
      if (c === quote) quote = undefined;
      else word = (word ?? "") + c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= "";
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else {
      word = (word ?? "") + c;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

// ------------------------------------------------------------ YAML subset

/** A value of the YAML subset. */
export type Yaml =
  | string
  | number
  | boolean
  | null
  | Yaml[]
  | { [key: string]: Yaml };

interface Line {
  indent: number;
  text: string;
  number: number;
}

/**
 * Reads the YAML subset deploy/ is written in: block mappings and
 * sequences, plain and quoted scalars, `|` literal blocks, `{}` and `[]`,
 * comments and `---` between documents. Anything else (anchors, flow
 * collections with content, folded blocks, tabs) is rejected, so the
 * manifests stay within what this reader checks.
 *
 * @throws {SyntaxError} naming the line it cannot read.
 */
export function parseYamlDocuments(text: string): Yaml[] {
  const docs: Line[][] = [[]];
  text.split("\n").forEach((raw, i) => {
    if (raw.trimEnd() === "---") {
      docs.push([]);
      return;
    }
    if (raw.includes("\t")) {
      throw new SyntaxError(`Tab at line ${i + 1}; indent with spaces`);
    }
    docs.at(-1)!.push({
      indent: raw.length - raw.trimStart().length,
      text: raw.trimEnd(),
      number: i + 1,
    });
  });
  return docs
    .map((lines) => new YamlReader(lines).document())
    .filter((doc) => doc !== null);
}

class YamlReader {
  #lines: Line[];
  #at = 0;

  constructor(lines: Line[]) {
    this.#lines = lines;
  }

  document(): Yaml {
    this.#skipBlank();
    if (this.#at >= this.#lines.length) return null;
    const value = this.#block(this.#lines[this.#at].indent);
    this.#skipBlank();
    if (this.#at < this.#lines.length) {
      this.#fail(this.#lines[this.#at], "unexpected indentation");
    }
    return value;
  }

  #skipBlank(): void {
    while (this.#at < this.#lines.length && isBlank(this.#lines[this.#at])) {
      this.#at++;
    }
  }

  #fail(line: Line, why: string): never {
    throw new SyntaxError(`YAML line ${line.number}: ${why}: "${line.text}"`);
  }

  #block(indent: number): Yaml {
    this.#skipBlank();
    const first = this.#lines[this.#at];
    return first.text.trimStart().startsWith("- ") ||
        first.text.trimStart() === "-"
      ? this.#sequence(indent)
      : this.#mapping(indent, {});
  }

  #sequence(indent: number): Yaml[] {
    const items: Yaml[] = [];
    while (true) {
      this.#skipBlank();
      const line = this.#lines[this.#at];
      if (!line || line.indent !== indent) return items;
      const body = line.text.trimStart();
      if (!body.startsWith("-")) return items;
      const rest = body.slice(1).trimStart();
      if (rest === "") {
        this.#at++;
        items.push(this.#block(this.#lines[this.#at].indent));
      } else if (keyValue(rest)) {
        // "- key: value" opens a mapping indented past the dash.
        const inner = indent + (body.length - rest.length);
        this.#lines[this.#at] = { ...line, indent: inner, text: rest };
        items.push(this.#mapping(inner, {}));
      } else {
        this.#at++;
        items.push(scalar(stripComment(rest), line, this));
      }
    }
  }

  #mapping(indent: number, map: { [key: string]: Yaml }) {
    while (true) {
      this.#skipBlank();
      const line = this.#lines[this.#at];
      if (!line || line.indent < indent) return map;
      if (line.indent > indent) this.#fail(line, "unexpected indentation");
      const pair = keyValue(line.text.trimStart());
      if (!pair) return map;
      const [key, raw] = pair;
      if (key in map) this.#fail(line, `duplicate key "${key}"`);
      this.#at++;
      const value = stripComment(raw);
      if (value === "|") {
        map[key] = this.#literal(indent);
      } else if (value === "") {
        this.#skipBlank();
        const next = this.#lines[this.#at];
        const nested = next &&
          (next.indent > indent ||
            (next.indent === indent && next.text.trimStart().startsWith("-")));
        map[key] = nested ? this.#block(next.indent) : null;
      } else {
        map[key] = scalar(value, line, this);
      }
    }
  }

  #literal(parentIndent: number): string {
    // Inside the block "#" is content; only empty lines are not.
    const empty = (line: Line) => line.text.trim() === "";
    const lines: Line[] = [];
    while (this.#at < this.#lines.length) {
      const line = this.#lines[this.#at];
      if (!empty(line) && line.indent <= parentIndent) break;
      lines.push(line);
      this.#at++;
    }
    while (lines.length > 0 && empty(lines.at(-1)!)) lines.pop();
    const first = lines.find((line) => !empty(line));
    const cut = first?.indent ?? 0;
    return lines.map((line) => line.text.slice(cut)).join("\n") + "\n";
  }

  failAt(line: Line, why: string): never {
    this.#fail(line, why);
  }
}

function isBlank(line: Line): boolean {
  const body = line.text.trim();
  return body === "" || body.startsWith("#");
}

function keyValue(text: string): [string, string] | undefined {
  const match = /^([A-Za-z0-9_.\/-]+|"[^"]*"):(?: (.*))?$/.exec(text);
  if (!match) return undefined;
  return [match[1].replace(/^"(.*)"$/, "$1"), match[2] ?? ""];
}

function stripComment(value: string): string {
  const quote = value[0];
  if (quote === '"' || quote === "'") {
    // The value ends at the closing quote; a comment may follow it.
    let end = 1;
    while (end < value.length) {
      if (quote === '"' && value[end] === "\\") end += 2;
      else if (quote === "'" && value.startsWith("''", end)) end += 2;
      else if (value[end] === quote) break;
      else end++;
    }
    return value.slice(0, end + 1);
  }
  const hash = value.indexOf(" #");
  return (hash === -1 ? value : value.slice(0, hash)).trim();
}

function scalar(value: string, line: Line, reader: YamlReader): Yaml {
  if (value.startsWith('"')) {
    if (!value.endsWith('"') || value.length < 2) {
      reader.failAt(line, "unterminated quote");
    }
    return JSON.parse(value);
  }
  if (value.startsWith("'")) {
    if (!value.endsWith("'") || value.length < 2) {
      reader.failAt(line, "unterminated quote");
    }
    return value.slice(1, -1).replaceAll("''", "'");
  }
  if (value === "{}") return {};
  if (value === "[]") return [];
  if (/^[[{&*!>|%@`]/.test(value)) reader.failAt(line, "outside the subset");
  if (value === "true" || value === "false") return value === "true";
  if (value === "null" || value === "~") return null;
  if (/^0\d/.test(value)) reader.failAt(line, "octal-looking number");
  if (/^-?\d+(\.\d+)?$/.test(value)) return Number(value);
  return value;
}

/**
 * Turns on the SSL-bump example the default config (and the ConfigMap)
 * carry, as their comment says: drop the plain `http_port 3128` line and
 * uncomment the example.
 */
export function followSslBumpComment(conf: string): string {
  return conf.split("\n")
    .filter((line) => line !== "http_port 3128")
    .map((line) =>
      /^#(http_port| {2}generate|sslcrtd|acl step|ssl_bump)/.test(line)
        ? line.slice(1)
        : line
    )
    .join("\n");
}
