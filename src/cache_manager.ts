/**
 * Reads Squid's cache manager over loopback. Squid answers manager
 * requests on its HTTP port at `/squid-internal-mgr/<page>`, when the
 * config allows the manager from localhost (the default config does).
 *
 * @module
 */

/** How long one manager request may take. */
export const MANAGER_TIMEOUT_MS = 1000;

/** A manager page, or why it could not be read. */
export type ManagerReply =
  | { ok: true; text: string }
  | { ok: false; reason: string; status?: number };

/** Counts the manager requests this process made; Squid counts them too. */
let requestsMade = 0;

/** Manager requests made so far, so metrics users can subtract them. */
export function managerRequestsMade(): number {
  return requestsMade;
}

/** Fetches one manager page with a short timeout. */
export async function fetchManagerPage(
  proxy: { hostname: string; port: number },
  page: string,
): Promise<ManagerReply> {
  const host = proxy.hostname.includes(":")
    ? `[${proxy.hostname}]`
    : proxy.hostname;
  requestsMade++;
  try {
    const response = await fetch(
      `http://${host}:${proxy.port}/squid-internal-mgr/${page}`,
      { signal: AbortSignal.timeout(MANAGER_TIMEOUT_MS) },
    );
    const text = await response.text();
    if (response.ok) return { ok: true, text };
    return {
      ok: false,
      reason: `HTTP ${response.status}`,
      status: response.status,
    };
  } catch (err) {
    if (err instanceof TypeError || err instanceof DOMException) {
      return { ok: false, reason: err.message };
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
  const reply = await fetchManagerPage(proxy, "active_requests");
  if (!reply.ok) return undefined;
  const connections = reply.text.match(/^Connection: /gm)?.length ?? 0;
  return Math.max(0, connections - 1);
}
