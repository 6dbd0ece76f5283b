/**
 * Squid looks up `cache_peer` names once at start and then hourly. A
 * sibling whose name did not resolve yet (its pod or container was still
 * starting) would stay unused for up to an hour, so the entrypoint reads
 * the cache manager's peer list after start and asks for a reconfigure,
 * which repeats the lookups, while a sibling still has no address.
 *
 * @module
 */

import { fetchManagerPage } from "./cache_manager.ts";
import * as log from "./log.ts";

/** The first check's delay; each later one waits twice as long, up to 80 s. */
const FIRST_CHECK_MS = 5_000;
const LONGEST_WAIT_MS = 80_000;

/** After this long the entrypoint stops asking and leaves it to Squid. */
const GIVE_UP_AFTER_MS = 10 * 60_000;

/** Names of the siblings in a `server_list` page that have no address. */
export function unresolvedSiblings(serverList: string): string[] {
  return serverList.split(/\n(?=Sibling\s*:)/)
    .filter((block) => /^Sibling\s*:/m.test(block))
    .filter((block) => !/^Address\[\d+\]\s*:/m.test(block))
    .map((block) => /^Sibling\s*:\s*(\S+)/m.exec(block)![1]);
}

/**
 * Checks with a growing delay until all siblings have an address, asking
 * for a reconfigure each time some do not; stops early when `active()`
 * turns false (Squid gone or shutting down).
 */
export async function watchSiblingDns(
  proxy: { hostname: string; port: number },
  options: { active(): boolean; reconfigure(): void },
): Promise<void> {
  const deadline = Date.now() + GIVE_UP_AFTER_MS;
  let wait = FIRST_CHECK_MS;
  while (options.active() && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, wait));
    wait = Math.min(wait * 2, LONGEST_WAIT_MS);
    if (!options.active()) return;

    const page = await fetchManagerPage(proxy, "server_list");
    if (!page.ok) continue;
    const unresolved = unresolvedSiblings(page.text);
    if (unresolved.length === 0) {
      log.info("Every sibling proxy name resolves");
      return;
    }
    log.warn(
      `Sibling proxy name(s) ${unresolved.join(", ")} do not resolve yet; ` +
        "asking Squid to reconfigure so it looks them up again",
    );
    options.reconfigure();
  }
}
