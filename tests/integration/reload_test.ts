/**
 * A SIGHUP reload that changes squid.conf: what /metrics reports follows
 * the new config without a restart.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  dockerOk,
  getHealth,
  Lab,
  SANITIZED,
  waitFor,
  waitForReady,
} from "./_harness.ts";

const DEFAULT_CONF = Deno.readTextFileSync(
  new URL("../../src/default-squid.conf", import.meta.url),
);

/** The value of one unlabelled sample in a /metrics scrape. */
function sample(text: string, name: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(" ")[1]);
}

Deno.test(
  "a reload that resizes the cache shows in /metrics without a restart",
  SANITIZED,
  async () => {
    await using lab = await Lab.create();
    const dir = await lab.makeDir("etc-squid");
    await lab.writeFile("etc-squid/squid.conf", DEFAULT_CONF);
    const proxy = await lab.startProxy({
      mounts: [{ host: dir, container: "/etc/squid", readOnly: true }],
    });
    await waitForReady(proxy);
    const before = (await getHealth(proxy, "/metrics")).body;
    assert.equal(
      sample(before, "squid_cache_disk_configured_bytes"),
      250 * 2 ** 20,
    );
    const started = await dockerOk([
      "inspect",
      "-f",
      "{{.State.StartedAt}}",
      proxy.name,
    ]);

    await Deno.writeTextFile(
      join(dir, "squid.conf"),
      DEFAULT_CONF.replace(
        "cache_dir ufs /var/spool/squid 250 16 256",
        "cache_dir ufs /var/spool/squid 100 16 256",
      ),
    );
    await dockerOk(["kill", "--signal=HUP", proxy.name]);

    const after = await waitFor("/metrics to show the reload", async () => {
      const text = (await getHealth(proxy, "/metrics")).body;
      return sample(text, "cephaloproxy_config_reloads_total") === 1 &&
        sample(text, "squid_cache_disk_configured_bytes") === 100 * 2 ** 20 &&
        text;
    });
    assert.equal(sample(after, "cephaloproxy_config_reload_failures_total"), 0);
    assert.equal((await getHealth(proxy, "/ready")).status, 200);
    assert.equal(
      await dockerOk(["inspect", "-f", "{{.State.StartedAt}}", proxy.name]),
      started,
    );
  },
);
