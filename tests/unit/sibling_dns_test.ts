import assert from "node:assert/strict";
import { unresolvedSiblings } from "../../src/sibling_dns.ts";

/** One peer block of Squid 6's `server_list` page, as the image prints it. */
function peer(name: string, address?: string): string {
  return [
    `Sibling    : ${name}`,
    `Host       : ${name}/3128/4827`,
    "Flags      : proxy-only htcp connection-auth=auto tls-disable",
    ...(address ? [`Address[0] : ${address}`] : []),
    `Status     : ${address ? "Up" : "Down"}`,
    "FETCHES    : 0",
  ].join("\n");
}

Deno.test("unresolvedSiblings() names the siblings without an address", () => {
  const page = "\n" + [
    peer("p0.peers", "10.0.0.4"),
    peer("p2.peers"),
    peer("p3.peers"),
  ].join("\n\n") + "\n";

  assert.deepEqual(unresolvedSiblings(page), ["p2.peers", "p3.peers"]);
});

Deno.test("unresolvedSiblings() finds nothing when every sibling resolved", () => {
  const page = [peer("a", "10.0.0.1"), peer("b", "10.0.0.2")].join("\n\n");

  assert.deepEqual(unresolvedSiblings(page), []);
  assert.deepEqual(unresolvedSiblings(""), []);
});
