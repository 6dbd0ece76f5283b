/**
 * Tests of scripts/ensure-podman-rootless.sh against a real rootless
 * Podman. They run as root (the script needs it) and kill the user's
 * processes, so scripts/test.sh runs them on their own, after the user is
 * set up and before the rootless integration tests, which then run on the
 * state these tests leave behind.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { IMAGE, LABEL, run, waitFor } from "../integration/_harness.ts";

/** Podman's error without a pause process (quotes escaped as it logs). */
const MIGRATE_HINT = new RegExp(
  String.raw`invalid internal status, try resetting the pause process` +
    String.raw` with \\"podman system migrate\\"`,
);

const SCRIPT = fileURLToPath(
  new URL("../../scripts/ensure-podman-rootless.sh", import.meta.url),
);

/** Runs a command as `user`; a non-zero exit is returned, not thrown. */
function asUser(user: string, args: string[]) {
  return run("runuser", ["-u", user, "--", ...args]);
}

/** Runs a command as `user` and returns its trimmed stdout. */
async function asUserOk(user: string, args: string[]): Promise<string> {
  const result = await asUser(user, args);
  assert.equal(result.code, 0, `${args.join(" ")}: ${result.stderr}`);
  return result.stdout.trim();
}

/** Runs the script as root and checks it names its user on stdout. */
async function ensureRootless() {
  const result = await run(SCRIPT, [], { timeoutMs: 300_000 });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^[a-z_][a-z0-9_-]*\n$/);
  return { user: result.stdout.trim(), stderr: result.stderr };
}

/**
 * Kills, with SIGKILL, every process of the user (the pause process,
 * conmon, slirp4netns, the API service) and then the container's init,
 * whose processes run under subordinate IDs, if it outlived conmon. This
 * is what a logout with KillUserProcesses or a killed session does, while
 * /run, and with it Podman's record of a running container, stays.
 * conmon goes first: were it alive when the container died, it would
 * record the exit.
 */
async function killEverything(user: string, containerPid: number) {
  const killUser = async () => {
    await run("pkill", ["-KILL", "-u", user]);
    return (await run("pgrep", ["-u", user])).code === 1;
  };

  await waitFor(`every process of ${user} to be gone`, killUser, 10_000);
  try {
    Deno.kill(containerPid, "SIGKILL");
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  await waitFor(`every process of ${user} to be gone`, killUser, 10_000);
}

/**
 * Starts a container that idles on `network`, also answering to
 * origin.test there, and returns its host PID and its address.
 */
async function startIdle(user: string, name: string, network: string) {
  await asUserOk(user, [
    "podman",
    "run",
    "-d",
    "--name",
    name,
    "--label",
    LABEL,
    "--network",
    network,
    "--network-alias",
    "origin.test",
    "--entrypoint",
    "/usr/bin/deno",
    IMAGE,
    "eval",
    "setInterval(() => {}, 60_000)",
  ]);
  const format = `{{.State.Pid}} ` +
    `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`;
  const [pid, address] = (await asUserOk(user, [
    "podman",
    "inspect",
    "-f",
    format,
    name,
  ])).split(" ");
  return { pid: Number(pid), address };
}

/**
 * Starts a container answering to origin.test on `network`, resolves that
 * name from a second one and removes both, so that the rootless network
 * namespace goes with them. Returns the address and what was resolved.
 */
async function resolveOnce(user: string, network: string) {
  const name = `${network}-origin`;

  try {
    const { address } = await startIdle(user, name, network);
    const lookup = await asUser(user, [
      "podman",
      "run",
      "--rm",
      "--label",
      LABEL,
      "--network",
      network,
      "--entrypoint",
      "/usr/bin/deno",
      IMAGE,
      "eval",
      'console.log(JSON.stringify(await Deno.resolveDns("origin.test", "A")))',
    ]);
    return { address, resolved: lookup.stdout.trim(), stderr: lookup.stderr };
  } finally {
    await asUser(user, ["podman", "rm", "-f", "-t", "0", name]);
  }
}

Deno.test(
  "ensure-podman-rootless.sh repairs a user whose processes were all killed",
  async (t) => {
    const { user } = await ensureRootless();
    const uid = await asUserOk(user, ["id", "-u"]);
    const network = `cpt-${crypto.randomUUID().slice(0, 8)}-net`;
    const lost = `${network}-lost`;

    try {
      await asUserOk(user, [
        "podman",
        "network",
        "create",
        "--label",
        LABEL,
        network,
      ]);
      const { pid } = await startIdle(user, lost, network);
      await killEverything(user, pid);

      await t.step(
        "Podman then refuses to work and names the fix",
        async () => {
          const info = await asUser(user, ["podman", "info"]);

          assert.notEqual(info.code, 0);
          assert.match(info.stderr, MIGRATE_HINT);
        },
      );

      await t.step("the script applies it, says why and exits 0", async () => {
        const again = await ensureRootless();

        assert.equal(again.user, user);
        assert.match(
          again.stderr,
          /\[scripts\] \S+'s Podman pause process is gone \(.*\); running podman system migrate/,
        );
        assert.match(
          again.stderr,
          /dropping the DNS records of \S+'s lost containers/,
        );
      });

      await t.step(
        "Podman works again; the lost container is not running",
        async () => {
          await asUserOk(user, ["podman", "info"]);
          const running = await asUserOk(user, [
            "podman",
            "inspect",
            "-f",
            "{{.State.Running}}",
            lost,
          ]);

          assert.equal(running, "false");
        },
      );

      // The second round runs in a new rootless network namespace, where a
      // DNS server kept alive by the lost container's records is absent.
      for (const round of ["first", "second"]) {
        await t.step(
          `container names resolve on the network (${round} time)`,
          async () => {
            const { address, resolved, stderr } = await resolveOnce(
              user,
              network,
            );

            assert.equal(resolved, JSON.stringify([address]), stderr);
          },
        );
      }

      await t.step("the user's API socket answers", async () => {
        const ping = await run("curl", [
          "-sS",
          "--unix-socket",
          `/run/user/${uid}/podman/podman.sock`,
          "http://podman/_ping",
        ]);

        assert.equal(ping.stdout, "OK", ping.stderr);
      });
    } finally {
      await asUser(user, ["podman", "rm", "-f", lost]);
      await asUser(user, ["podman", "network", "rm", "-f", network]);
    }
  },
);

Deno.test("ensure-podman-rootless.sh leaves a working user alone", async () => {
  const first = await ensureRootless();
  const second = await ensureRootless();

  assert.equal(second.user, first.user);
  assert.doesNotMatch(
    second.stderr,
    /migrate|creating|giving|writing|replacing/,
  );
});
