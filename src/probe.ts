/**
 * The image's HEALTHCHECK: asks the entrypoint's `/health` on loopback and
 * exits 0 for a 200, 1 otherwise. A separate tiny program because the
 * runtime has no curl or shell.
 *
 * @module
 */

const TIMEOUT_MS = 3000;

async function probe(): Promise<number> {
  const port = Deno.env.get("HEALTH_PORT") || "8080";
  try {
    const response = await fetch(`http://127.0.0.1:${port}/health`, {
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    await response.body?.cancel();
    return response.status === 200 ? 0 : 1;
  } catch (err) {
    if (err instanceof TypeError || err instanceof DOMException) return 1;
    throw err;
  }
}

if (import.meta.main) Deno.exit(await probe());
