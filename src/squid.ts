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

/** Exit code when the Squid binary is absent (as a shell reports it). */
export const EXIT_NOT_FOUND = 127;
/** Exit code when the Squid binary cannot be executed. */
export const EXIT_NOT_EXECUTABLE = 126;

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
  const output = await new Deno.Command(bin, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();

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
