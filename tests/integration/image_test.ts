/**
 * The image itself: distroless (no shell), Squid 6 built with OpenSSL,
 * non-root in group 0, exec-form entrypoint and healthcheck, and small.
 */

import assert from "node:assert/strict";
import {
  docker,
  dockerOk,
  ENGINE,
  IMAGE,
  Lab,
  PODMAN,
  SANITIZED,
  waitForReady,
} from "./_harness.ts";

/** The size budget, in Docker's decimal MB; the legacy image was 500 MB. */
const MAX_IMAGE_BYTES = 150 * 1000 * 1000;

interface ImageConfig {
  User: string;
  ExposedPorts: Record<string, unknown>;
  Entrypoint: string[] | string;
  Healthcheck?: { Test: string[] };
  StopSignal?: string;
}

/**
 * The image's size and config. Podman 4 prints the whole array for
 * `--format "{{json .}}"` and keeps the healthcheck of a Docker-format
 * image beside the config rather than in it; both are read the same here.
 */
async function inspectImage(): Promise<{ Size: number; Config: ImageConfig }> {
  if (!PODMAN) {
    return JSON.parse(
      await dockerOk(["image", "inspect", "--format", "{{json .}}", IMAGE]),
    );
  }
  const [image] = JSON.parse(await dockerOk(["image", "inspect", IMAGE]));
  return {
    Size: image.Size,
    Config: { ...image.Config, Healthcheck: image.Healthcheck },
  };
}

Deno.test(
  "image runs as UID 1000 in group 0 and exposes 3128 and 8080",
  SANITIZED,
  async () => {
    const { Config } = await inspectImage();
    assert.ok(
      ["1000:0", "1000"].includes(Config.User),
      `User is "${Config.User}"`,
    );
    assert.ok("3128/tcp" in Config.ExposedPorts, "3128/tcp not exposed");
    assert.ok("8080/tcp" in Config.ExposedPorts, "8080/tcp not exposed");
  },
);

Deno.test(
  "image entrypoint and healthcheck are exec form",
  SANITIZED,
  async () => {
    const { Config } = await inspectImage();
    assert.ok(Array.isArray(Config.Entrypoint), "Entrypoint is not a list");
    assert.notEqual(Config.Entrypoint[0], "/bin/sh");
    assert.equal(Config.Healthcheck?.Test[0], "CMD");
  },
);

Deno.test("image stops with SIGTERM", SANITIZED, async () => {
  const { Config } = await inspectImage();
  assert.equal(Config.StopSignal, "SIGTERM");
});

Deno.test("image is at most 150 MB", SANITIZED, async () => {
  const { Size } = await inspectImage();
  assert.ok(
    Size <= MAX_IMAGE_BYTES,
    `image is ${(Size / 1e6).toFixed(1)} MB`,
  );
});

Deno.test(
  "image's Squid is version 6 built with OpenSSL",
  SANITIZED,
  async () => {
    await using lab = await Lab.create();
    const result = await lab.runImage({
      entrypoint: "/usr/sbin/squid",
      args: ["-v"],
    });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /Version 6\./);
    assert.ok(result.stdout.includes("--with-openssl"), result.stdout);
  },
);

Deno.test(
  "image has no shell, and its healthcheck command passes in a ready container",
  SANITIZED,
  async (t) => {
    await using lab = await Lab.create();
    const proxy = await lab.startProxy();
    await waitForReady(proxy);

    for (const shell of ["sh", "/bin/sh", "/bin/bash"]) {
      await t.step(`${ENGINE} exec ${shell} fails`, async () => {
        const result = await docker(["exec", proxy.name, shell, "-c", "true"]);
        assert.notEqual(result.code, 0, `${shell} ran: ${result.stdout}`);
      });
    }

    await t.step("the HEALTHCHECK command exits 0", async () => {
      const { Config } = await inspectImage();
      const [form, ...command] = Config.Healthcheck!.Test;
      assert.equal(form, "CMD");
      const result = await docker(["exec", proxy.name, ...command]);
      assert.equal(result.code, 0, result.stderr);
    });

    if (PODMAN) {
      // Podman runs healthchecks from systemd timers; without systemd
      // they run only on request.
      await t.step("podman healthcheck run reports healthy", async () => {
        const result = await docker(["healthcheck", "run", proxy.name]);
        assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
        const status = await dockerOk([
          "inspect",
          "--format",
          "{{.State.Health.Status}}",
          proxy.name,
        ]);
        assert.equal(status, "healthy");
      });
    }
  },
);
