/**
 * Runs the Squid binary for the short jobs before start: `-k parse` to
 * validate a config and `-z` to create cache directories. The long-running
 * proxy is spawned by `supervisor.ts`.
 *
 * @module
 */

/** Output and success of a finished Squid job. */
export interface SquidJob {
  success: boolean;
  code: number;
  lines: string[];
}

/** Exit code when a binary is absent (as a shell reports it). */
export const EXIT_NOT_FOUND = 127;
/** Exit code when a binary cannot be executed. */
export const EXIT_NOT_EXECUTABLE = 126;

/** A program could not be started; `exitCode` is what a shell would use. */
export class SpawnError extends Error {
  override name = "SpawnError";
  readonly exitCode: number;

  constructor(message: string, exitCode: number) {
    super(message);
    this.exitCode = exitCode;
  }
}

/**
 * Runs `start`, turning the two errors of a program that cannot be
 * started into a {@linkcode SpawnError} that names it.
 */
export function spawnOrExplain<T>(bin: string, start: () => T): T {
  try {
    return start();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new SpawnError(
        `Cannot run "${bin}": the file does not exist; the image is ` +
          "incomplete or the path is wrong",
        EXIT_NOT_FOUND,
      );
    }
    if (err instanceof Deno.errors.PermissionDenied) {
      throw new SpawnError(
        `Cannot run "${bin}": permission denied; it must be executable by ` +
          "the container user",
        EXIT_NOT_EXECUTABLE,
      );
    }
    throw err;
  }
}

/** Asks Squid to parse `configPath` without starting; returns its messages. */
export function parseConfig(squidBin: string, configPath: string) {
  return runJob(squidBin, ["-k", "parse", "-f", configPath]);
}

/** Creates missing cache directories (`squid -z`) and waits until done. */
export function createCacheDirs(squidBin: string, configPath: string) {
  return runJob(squidBin, ["-N", "-z", "-f", configPath]);
}

/** The arguments for the proxy itself: foreground, one process. */
export function proxyArgs(configPath: string, logLevel: number): string[] {
  return ["-N", "-f", configPath, "-d", String(logLevel)];
}

async function runJob(bin: string, args: string[]): Promise<SquidJob> {
  const child = spawnOrExplain(bin, () =>
    new Deno.Command(bin, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn());
  const output = await child.output();

  const decoder = new TextDecoder();
  const text = decoder.decode(output.stdout) + decoder.decode(output.stderr);
  const lines = text.split("\n").filter((line) => line.trim() !== "");
  return { success: output.success, code: output.code, lines };
}

/**
 * Squid's messages that report a problem. `-k parse` prints every line it
 * reads at debug level 1; only these matter to an operator.
 */
export function problemLines(lines: string[]): string[] {
  return lines.filter((line) =>
    /\b(FATAL|ERROR|Bungled|unrecognized|Terminated abnormally)\b/i.test(line)
  );
}

/**
 * Squid's warnings worth passing on, without the one every Docker host
 * without IPv6 triggers.
 */
export function warningLines(lines: string[]): string[] {
  return lines.filter((line) =>
    /\bWARNING\b/.test(line) && !/BCP 177 violation/.test(line)
  );
}

/** A Squid line for our log: its own timestamp dropped, marked as Squid's. */
export function squidMessage(line: string): string {
  return "squid: " +
    line.replace(/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d\|\s*/, "");
}
