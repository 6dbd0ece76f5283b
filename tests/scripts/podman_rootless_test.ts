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

/** Podman's error (quotes escaped in its log line) when its pause process is gone. */
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
 * whose processes run under subordinate IDs, if it outlived conmon. This is what a logout with
 * KillUserProcesses or a killed session does, while /run, and with it
 * Podman's record of a running container, stays. conmon goes first: were
 * it alive when the container died, it would record the exit.
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

Deno.test(
  "ensure-podman-rootless.sh repairs a user whose processes were all killed",
  async (t) => {
    const { user } = await ensureRootless();
    const uid = await asUserOk(user, ["id", "-u"]);
    const name = `cpt-${crypto.randomUUID().slice(0, 8)}-lost`;

    try {
      await asUserOk(user, [
        "podman",
        "run",
        "-d",
        "--name",
        name,
        "--label",
        LABEL,
        IMAGE,
      ]);
      const pid = await asUserOk(user, [
        "podman",
        "inspect",
        "-f",
        "{{.State.Pid}}",
        name,
      ]);
      await killEverything(user, Number(pid));

      await t.step(
        "Podman then refuses to work and names the fix",
        async () => {
          const info = await asUser(user, ["podman", "info"]);

          assert.notEqual(info.code, 0);
          assert.match(
            info.stderr,
            MIGRATE_HINT,
          );
        },
      );

      await t.step("the script applies it, says why and exits 0", async () => {
        const again = await ensureRootless();

        assert.equal(again.user, user);
        assert.match(
          again.stderr,
          /\[scripts\] \S+'s Podman pause process is gone \(.*\); running podman system migrate/,
        );
      });

      await t.step(
        "Podman works again; the container is not running",
        async () => {
          await asUserOk(user, ["podman", "info"]);
          const running = await asUserOk(user, [
            "podman",
            "inspect",
            "-f",
            "{{.State.Running}}",
            name,
          ]);

          assert.equal(running, "false");
        },
      );

      await t.step(
        "a new container starts and the API socket answers",
        async () => {
          const ping = await run("curl", [
            "-sS",
            "--unix-socket",
            `/run/user/${uid}/podman/podman.sock`,
            "http://podman/_ping",
          ]);
          const validate = await asUser(user, [
            "podman",
            "run",
            "--rm",
            "--label",
            LABEL,
            IMAGE,
            "--validate-only",
          ]);

          assert.equal(ping.stdout, "OK", ping.stderr);
          assert.equal(validate.code, 0, validate.stderr);
          assert.match(
            validate.stdout + validate.stderr,
            /\[INFO\] Validation passed: /,
          );
        },
      );
    } finally {
      await asUser(user, ["podman", "rm", "-f", name]);
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
