/**
 * The entrypoint's only writer to stdout and stderr. Every line carries a
 * UTC timestamp and a level; INFO goes to stdout, WARN and ERROR to stderr,
 * so a platform that splits the streams keeps the problems apart.
 *
 * Level names and the message texts operators grep for are those of the
 * legacy image (`[INFO]`, `[WARN]`, `[ERROR]`).
 *
 * @module
 */

/** Severity of a log line. */
export type Level = "INFO" | "WARN" | "ERROR";

/** Receives each formatted line; tests swap it to capture output. */
export type LineSink = (level: Level, line: string) => void;

const encoder = new TextEncoder();

function writeToStream(level: Level, line: string): void {
  const stream = level === "INFO" ? Deno.stdout : Deno.stderr;
  stream.writeSync(encoder.encode(line + "\n"));
}

let sink: LineSink = writeToStream;

/** Formats one line: `2026-01-01T00:00:00.000Z [INFO] message`. */
export function formatLine(level: Level, message: string, now = new Date()) {
  return `${now.toISOString()} [${level}] ${message}`;
}

/** Replaces where lines go and returns the previous sink. */
export function setLineSink(next: LineSink): LineSink {
  const previous = sink;
  sink = next;
  return previous;
}

/** Logs at INFO, to stdout. */
export function info(message: string): void {
  sink("INFO", formatLine("INFO", message));
}

/** Logs at WARN, to stderr. */
export function warn(message: string): void {
  sink("WARN", formatLine("WARN", message));
}

/** Logs at ERROR, to stderr. */
export function error(message: string): void {
  sink("ERROR", formatLine("ERROR", message));
}

/** Writes text to stdout as is, for `--help`. */
export function print(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text));
}
