/**
 * Three replicas of the image as HTCP siblings on one Docker network, as
 * the scaled Kubernetes manifests run them: a hit cached by one replica is
 * served to another replica's client from the sibling, and stopping one
 * replica loses no request sent to the others.
 */

import assert from "node:assert/strict";
import {
  allLogs,
  curlViaProxy,
  dockerOk,
  IMAGE,
  Lab,
  originCount,
  type Proxy,
  readContainerFile,
  SANITIZED,
  waitFor,
  waitForExit,
  waitForReady,
} from "./_harness.ts";

/**
 * Starts `count` replicas that name each other in CEPHALOPROXY_PEERS.
 * They are created first and started by one command, so that each name
 * resolves by the time the Squids look their siblings up.
 */
async function startReplicas(lab: Lab, count: number): Promise<Proxy[]> {
  const names = Array.from({ length: count }, () => lab.containerName("peer"));
  for (const name of names) {
    const options = await lab.proxyRunOptions(name, {
      env: { CEPHALOPROXY_PEERS: names.join(",") },
    });
    await dockerOk([
      "create",
      ...options,
      // The entrypoint leaves out the sibling named like its host.
      `--hostname=${name}`,
      "--publish=127.0.0.1::3128",
      "--publish=127.0.0.1::8080",
      IMAGE,
    ]);
  }
  await dockerOk(["start", ...names]);

  const replicas: Proxy[] = [];
  for (const name of names) {
    const replica = {
      name,
      proxyUrl: `http://${await published(name, 3128)}`,
      healthUrl: `http://${await published(name, 8080)}`,
    };
    await waitForReady(replica);
    await waitFor(`${name} to resolve its siblings`, async () => {
      return (await allLogs(name)).includes(
        "Every sibling proxy name resolves",
      );
    }, 30_000);
    replicas.push(replica);
  }
  return replicas;
}

async function published(name: string, port: number): Promise<string> {
  const text = await dockerOk(["port", name, `${port}/tcp`]);
  return text.split("\n").find((line) => line.startsWith("127.0.0.1:"))!;
}

Deno.test(
  "replicas serve each other's cached objects as sibling hits",
  SANITIZED,
  async () => {
    await using lab = await Lab.create();
    const origin = await lab.startOrigin();
    const [a, b, c] = await startReplicas(lab, 3);

    const logs = await allLogs(b.name);
    assert.match(
      logs,
      new RegExp(`Sibling proxies \\(HTCP\\): ${a.name}, ${c.name}$`, "m"),
    );

    const url = "http://allowed.test:8000/shared-object";
    const first = await curlViaProxy(a, url);
    assert.equal(first.status, 200);
    const second = await curlViaProxy(b, url);
    assert.equal(second.status, 200);
    assert.equal(second.body, first.body);

    assert.equal(await originCount(origin, "/shared-object"), 1);
    const accessLog = await readContainerFile(
      b.name,
      "/var/log/squid/access.log",
    );
    assert.match(
      accessLog,
      / TCP_MISS\/200 \d+ GET \S+\/shared-object - SIBLING_HIT\//,
    );
  },
);

Deno.test(
  "stopping one replica loses no request sent to the others",
  SANITIZED,
  async () => {
    await using lab = await Lab.create();
    const origin = await lab.startOrigin();
    const [a, b, c] = await startReplicas(lab, 3);

    // Clients keep using B and C while A drains and exits.
    const stop = dockerOk(["stop", "--time=30", a.name]);
    const replies = [];
    for (let i = 0; i < 20; i++) {
      const replica = i % 2 === 0 ? b : c;
      replies.push(
        await curlViaProxy(
          replica,
          `http://allowed.test:8000/during-stop-${i}`,
        ),
      );
    }
    await stop;

    assert.equal(await waitForExit(a.name), 0);
    assert.deepEqual(replies.map((reply) => reply.status), Array(20).fill(200));
    for (let i = 0; i < 20; i++) {
      assert.equal(await originCount(origin, `/during-stop-${i}`), 1);
    }
  },
);
