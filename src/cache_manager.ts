/**
 * Reads Squid's cache manager over loopback. Squid answers manager
 * requests on its HTTP port at `/squid-internal-mgr/<page>`, when the
 * config allows the manager from localhost (the default config does).
 *
 * @module
 */

/** How long one manager request may take. */
export const MANAGER_TIMEOUT_MS = 1000;

/**
 * Fetches a manager page, or returns undefined when Squid does not answer
 * it (not listening, manager denied by `http_access`, timeout).
 */
export async function fetchManagerPage(
  proxy: { hostname: string; port: number },
  page: string,
): Promise<string | undefined> {
  const host = proxy.hostname.includes(":")
    ? `[${proxy.hostname}]`
    : proxy.hostname;
  try {
    const response = await fetch(
      `http://${host}:${proxy.port}/squid-internal-mgr/${page}`,
      { signal: AbortSignal.timeout(MANAGER_TIMEOUT_MS) },
    );
    const text = await response.text();
    return response.ok ? text : undefined;
  } catch (err) {
    if (err instanceof TypeError || err instanceof DOMException) {
      return undefined;
    }
    throw err;
  }
}

/**
 * Counts the client transactions Squid has in flight, not counting the
 * manager request that asks; undefined when the manager cannot be read.
 */
export async function countActiveRequests(
  proxy: { hostname: string; port: number },
): Promise<number | undefined> {
  const page = await fetchManagerPage(proxy, "active_requests");
  if (page === undefined) return undefined;
  const connections = page.match(/^Connection: /gm)?.length ?? 0;
  return Math.max(0, connections - 1);
}
