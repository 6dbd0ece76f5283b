/**
 * What differs between the container engines the integration tests run
 * under: Docker (the default) and Podman (`CEPHALOPROXY_DOCKER=podman`).
 *
 * @module
 */

/** Whether `client` (a path or a command name) is the Podman client. */
export function isPodman(client: string): boolean {
  return /^podman(-remote)?$/.test(client.split("/").at(-1) ?? "");
}

/**
 * Podman on a host without systemd cannot schedule the image's
 * HEALTHCHECK with a systemd timer and says so on stderr at every
 * container start and removal; `podman healthcheck run` still works. Drops those
 * lines, so that stderr is what the container itself wrote.
 */
export function dropEngineNoise(stderr: string): string {
  return stderr.replace(
    /^time="[^"]*" level=error msg="[^\n]*unable to get systemd connection to (add|start|remove) healthchecks: [^\n]*"(\n|$)/gm,
    "",
  );
}
