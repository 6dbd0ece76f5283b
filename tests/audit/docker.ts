/**
 * Gets an image's root filesystem and config out of Docker for the audit:
 * `docker create`, `docker export` and `tar`, then `docker rm`.
 *
 * @module
 */

import { join } from "node:path";

/** The deadline for one docker or tar command. */
const COMMAND_TIMEOUT_MS = 120_000;

/** What the audit reads from `docker image inspect`. */
export interface ImageConfig {
  user: string;
  /** RootFS.Layers: the diff IDs, base image first. */
  layers: string[];
}

/**
 * Runs a command and returns its stdout.
 *
 * @throws {Error} with its stderr when it exits non-zero or runs past the
 * deadline.
 */
export async function runOk(command: string, args: string[]): Promise<string> {
  const output = await new Deno.Command(command, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
  }).output();
  const decoder = new TextDecoder();
  if (!output.success) {
    throw new Error(
      `Cannot run "${command} ${args.join(" ")}": exit code ${output.code}, ` +
        decoder.decode(output.stderr).trim(),
    );
  }
  return decoder.decode(output.stdout);
}

/** Reads the User and the layer list of an image. */
export async function inspectImage(
  docker: string,
  image: string,
): Promise<ImageConfig> {
  const text = await runOk(docker, [
    "image",
    "inspect",
    "--format",
    "{{json .Config.User}} {{json .RootFS.Layers}}",
    image,
  ]);
  const [user, layers] = text.trim().split(" ", 2).map((part) =>
    JSON.parse(part)
  );
  return { user: user ?? "", layers: layers ?? [] };
}

/**
 * Unpacks an image's root filesystem into `dir`, keeping modes, owners and
 * setuid bits (which needs root), through a container that never starts.
 */
export async function exportImage(
  docker: string,
  image: string,
  dir: string,
): Promise<void> {
  const tarball = join(dir, "..", `${crypto.randomUUID()}.tar`);
  const container = (await runOk(docker, [
    "create",
    "--label",
    "cephaloproxy-test=1",
    // Never started; bases such as distroless name no command of their own.
    "--entrypoint",
    "/never-started",
    image,
  ])).trim();
  try {
    await runOk(docker, ["export", "--output", tarball, container]);
    await Deno.mkdir(dir, { recursive: true });
    await runOk("tar", [
      "--extract",
      "--file",
      tarball,
      "--directory",
      dir,
      "--preserve-permissions",
      "--same-owner",
      "--numeric-owner",
    ]);
  } finally {
    await Deno.remove(tarball).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
    await runOk(docker, ["rm", container]);
  }
}
