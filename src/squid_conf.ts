/**
 * Reads squid.conf the way Squid's preprocessor does, far enough to find
 * every path the proxy will need: full-line comments, backslash line
 * continuations, `include` with glob patterns, `if`/`else`/`endif` blocks,
 * `${...}` macros and double-quoted parameters. Squid itself stays the
 * judge of what each directive means (`squid -k parse` runs later); this
 * reader never rejects a directive it does not know.
 *
 * @module
 */

import { isDirectory, isFile } from "./_fs.ts";
import { isAbsolute, join, resolve } from "node:path";

/** One word of a directive line; `quoted` marks a `"..."` parameter. */
export interface Token {
  text: string;
  quoted: boolean;
}

/** A directive with where it was written, for error messages. */
export interface Directive {
  name: string;
  tokens: Token[];
  file: string;
  line: number;
}

/** The result of reading a squid.conf and everything it includes. */
export interface SquidConf {
  path: string;
  directives: Directive[];
  files: string[];
}

/** Values Squid gives its macros in a single-process (`-N`) run. */
const MACROS: Record<string, string> = {
  process_name: "squid",
  process_number: "1",
  kid_number: "1",
  process_count: "1",
  service_name: "squid",
};

/** Squid refuses deeper nesting of `include` (cf. `MAX_INCLUDE_DEPTH`). */
const MAX_INCLUDE_DEPTH = 16;

/** Returns the arguments of a directive as plain strings. */
export function args(directive: Directive): string[] {
  return directive.tokens.map((token) => token.text);
}

/** Formats `file:line` for messages. */
export function where(directive: Directive): string {
  return `${directive.file}:${directive.line}`;
}

/** Returns every directive called `name`, in file order. */
export function findAll(conf: SquidConf, name: string): Directive[] {
  return conf.directives.filter((directive) => directive.name === name);
}

/**
 * Reads `path` and the files it includes.
 *
 * @throws {SyntaxError} for an unbalanced `if`/`else`/`endif`, an unknown
 *   condition, an unterminated quote or include nesting beyond Squid's
 *   limit; the message names the file and line.
 * @throws {Deno.errors.NotFound} when `path` or an included file is absent.
 */
export function readSquidConf(path: string): SquidConf {
  const conf: SquidConf = { path, directives: [], files: [] };
  readFile(conf, resolve(path), 0);
  return conf;
}

function readFile(conf: SquidConf, path: string, depth: number): void {
  const text = Deno.readTextFileSync(path);
  conf.files.push(path);

  // Each open `if` records whether its branch is active.
  const blocks: { active: boolean; taken: boolean; line: number }[] = [];
  const active = () => blocks.every((block) => block.active);

  for (const { text: line, number } of logicalLines(text)) {
    const tokens = tokenize(expandMacros(line), path, number);
    if (tokens.length === 0) continue;
    const name = tokens[0].text;
    const rest = tokens.slice(1);
    const at = `${path}:${number}`;

    if (name === "if") {
      const taken = active() && evaluateCondition(rest, at);
      blocks.push({ active: taken, taken, line: number });
    } else if (name === "else") {
      const block = blocks.at(-1);
      if (!block) throw new SyntaxError(`"else" without "if" at ${at}`);
      block.active = !block.taken;
    } else if (name === "endif") {
      if (!blocks.pop()) throw new SyntaxError(`"endif" without "if" at ${at}`);
    } else if (!active()) {
      continue;
    } else if (name === "include") {
      includeFiles(conf, rest, at, depth);
    } else {
      conf.directives.push({ name, tokens: rest, file: path, line: number });
    }
  }

  const open = blocks.at(-1);
  if (open) {
    throw new SyntaxError(
      `"if" at ${path}:${open.line} has no "endif"; close the block`,
    );
  }
}

function includeFiles(
  conf: SquidConf,
  patterns: Token[],
  at: string,
  depth: number,
): void {
  if (depth + 1 > MAX_INCLUDE_DEPTH) {
    throw new SyntaxError(
      `"include" at ${at} nests deeper than ${MAX_INCLUDE_DEPTH} files; ` +
        "look for a file that includes itself",
    );
  }
  for (const pattern of patterns) {
    const matches = expandGlob(resolve(pattern.text));
    if (matches.length === 0 && isDirectory(resolve(pattern.text))) {
      throw new SyntaxError(
        `"include ${pattern.text}" at ${at} names a directory; ` +
          `include "${pattern.text}/*.conf" instead`,
      );
    }
    if (matches.length === 0) {
      throw new Deno.errors.NotFound(
        `"include ${pattern.text}" at ${at} matches no file; ` +
          "mount the file or remove the include",
      );
    }
    for (const match of matches) readFile(conf, match, depth + 1);
  }
}

/** Yields lines with continuations joined and full-line comments dropped. */
function* logicalLines(text: string) {
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const number = i + 1;
    let line = lines[i];
    // Squid drops comment lines before it joins continuations.
    if (line.trim().startsWith("#")) continue;
    while (line.endsWith("\\") && i + 1 < lines.length) {
      line = line.slice(0, -1) + lines[++i];
    }
    const trimmed = line.trim();
    if (trimmed === "") continue;
    yield { text: trimmed, number };
  }
}

function expandMacros(line: string): string {
  return line.replace(
    /\$\{([a-z_]+)\}/g,
    (whole, name: string) => MACROS[name] ?? whole,
  );
}

/** Splits a line into words; `"..."` keeps spaces and `\"` escapes. */
export function tokenize(line: string, file = "", number = 0): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < line.length) {
    if (/\s/.test(line[i])) {
      i++;
      continue;
    }
    if (line[i] === '"') {
      let text = "";
      i++;
      while (i < line.length && line[i] !== '"') {
        if (line[i] === "\\" && i + 1 < line.length) i++;
        text += line[i++];
      }
      if (i >= line.length) {
        throw new SyntaxError(
          `Unterminated quote at ${file}:${number}; close the "..." parameter`,
        );
      }
      i++;
      tokens.push({ text, quoted: true });
      continue;
    }
    const start = i;
    while (i < line.length && !/\s/.test(line[i])) i++;
    tokens.push({ text: line.slice(start, i), quoted: false });
  }
  return tokens;
}

/** Evaluates Squid's `if` conditions: `true`, `false`, `a = b`. */
function evaluateCondition(tokens: Token[], at: string): boolean {
  const words = tokens.map((token) => token.text);
  if (words.length === 1 && (words[0] === "true" || words[0] === "false")) {
    return words[0] === "true";
  }
  if (words.length === 3 && words[1] === "=") return words[0] === words[2];
  throw new SyntaxError(
    `Cannot evaluate "if ${words.join(" ")}" at ${at}; ` +
      'Squid accepts "true", "false" or "<value> = <value>"',
  );
}

/** Expands `*`, `?` and `[...]` in any path segment, sorted like glob(3). */
export function expandGlob(pattern: string): string[] {
  if (!/[*?[]/.test(pattern)) return isFile(pattern) ? [pattern] : [];

  const parts = pattern.split("/").filter((part) => part !== "");
  let found = [isAbsolute(pattern) ? "/" : "."];
  for (const part of parts) {
    const next: string[] = [];
    for (const base of found) {
      if (!/[*?[]/.test(part)) {
        next.push(join(base, part));
        continue;
      }
      const regex = globToRegExp(part);
      for (const entry of readDirOrEmpty(base)) {
        if (entry.name.startsWith(".") && !part.startsWith(".")) continue;
        if (regex.test(entry.name)) next.push(join(base, entry.name));
      }
    }
    found = next;
  }
  return found.filter(isFile).sort();
}

function readDirOrEmpty(dir: string): Deno.DirEntry[] {
  try {
    return [...Deno.readDirSync(dir)];
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    if (err instanceof Deno.errors.NotADirectory) return [];
    throw err;
  }
}

function globToRegExp(segment: string): RegExp {
  let source = "";
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i];
    if (c === "*") source += "[^/]*";
    else if (c === "?") source += "[^/]";
    else if (c === "[") {
      const end = segment.indexOf("]", i + 1);
      if (end === -1) {
        source += "\\[";
        continue;
      }
      const body = segment.slice(i + 1, end).replace(/^!/, "^");
      source += `[${body}]`;
      i = end;
    } else source += c.replace(/[.+^${}()|\\]/g, "\\$&");
  }
  return new RegExp(`^${source}$`);
}
