import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type Additions,
  GENERATED_NAME,
  generatedConfigText,
  HTCP_PORT,
  needsGeneratedConfig,
  siblingNames,
  writeGeneratedConfig,
} from "../../src/generated_config.ts";
import { readSquidConf } from "../../src/squid_conf.ts";
import { listDir, sanitized, throwsError } from "./_helpers.ts";

const NONE: Additions = {
  accessLogStdout: false,
  siblings: [],
  siblingHttpPort: 3128,
};

Deno.test(
  "needsGeneratedConfig() is true for a stdout log or siblings",
  sanitized({}),
  () => {
    assert.equal(needsGeneratedConfig(NONE), false);
    assert.equal(
      needsGeneratedConfig({ ...NONE, accessLogStdout: true }),
      true,
    );
    assert.equal(needsGeneratedConfig({ ...NONE, siblings: ["b"] }), true);
  },
);

Deno.test(
  "generatedConfigText() includes the config, then adds the lines asked",
  sanitized({}),
  () => {
    const text = generatedConfigText("/etc/squid/squid.conf", {
      accessLogStdout: true,
      siblings: ["cache-1.proxy", "cache-2.proxy"],
      siblingHttpPort: 3128,
    });

    assert.deepEqual(text.split("\n").slice(1), [
      "include /etc/squid/squid.conf",
      "access_log stdio:/dev/stdout squid",
      `htcp_port ${HTCP_PORT}`,
      "htcp_access allow localnet",
      `cache_peer cache-1.proxy sibling 3128 ${HTCP_PORT} htcp proxy-only`,
      `cache_peer cache-2.proxy sibling 3128 ${HTCP_PORT} htcp proxy-only`,
      "",
    ]);
    assert.match(text, /^# .*do not edit/);
  },
);

Deno.test(
  "writeGeneratedConfig() writes a config readSquidConf() follows",
  sanitized({ read: true, write: true }),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "generated-config-test-" });
    try {
      const conf = join(dir, "squid.conf");
      Deno.writeTextFileSync(conf, "http_port 3128\n");
      Deno.mkdirSync(join(dir, "run"));

      const path = writeGeneratedConfig(
        conf,
        { ...NONE, accessLogStdout: true },
        join(dir, "run"),
      );

      assert.equal(path, join(dir, "run", GENERATED_NAME));
      assert.deepEqual(listDir(join(dir, "run")), [GENERATED_NAME]);
      const generated = readSquidConf(path);
      assert.deepEqual(generated.files, [path, conf]);
      assert.deepEqual(
        generated.directives.map((d) => `${d.name} ${d.tokens[0].text}`),
        ["http_port 3128", "access_log stdio:/dev/stdout"],
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "writeGeneratedConfig() creates an absent runtime directory for group 0",
  sanitized({ read: true, write: true }),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "generated-config-test-" });
    try {
      const runtime = join(dir, "run");

      writeGeneratedConfig("/etc/squid/squid.conf", NONE, runtime);

      assert.deepEqual(listDir(runtime), [GENERATED_NAME]);
      assert.equal((Deno.statSync(runtime).mode ?? 0) & 0o7777, 0o775);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "writeGeneratedConfig() asks for a writable runtime directory",
  sanitized({ read: true, write: true }),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "generated-config-test-" });
    try {
      const runtime = join(dir, "missing", "run");

      const err = throwsError(
        () => writeGeneratedConfig("/etc/squid/squid.conf", NONE, runtime),
        Error,
      );

      assert.equal(
        err.message,
        `Cannot write the generated config "${runtime}/${GENERATED_NAME}": ` +
          `${runtime} is not writable; mount a writable volume (or tmpfs) ` +
          "there",
      );
      assert.deepEqual(listDir(dir), []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "siblingNames() lists the other replicas",
  sanitized({}),
  async (t) => {
    const cases: [string, Parameters<typeof siblingNames>[0], string[]][] = [
      ["nothing asked", { hostname: "cache-0" }, []],
      [
        "explicit list without this host",
        { peers: " cache-a, cache-b.svc ,,cache-c ", hostname: "cache-b" },
        ["cache-a", "cache-c"],
      ],
      [
        "StatefulSet replicas",
        { peerCount: 3, peerService: "proxy", hostname: "web-cache-1" },
        ["web-cache-0.proxy", "web-cache-2.proxy"],
      ],
      [
        "explicit list wins over a peer count",
        { peers: "x", peerCount: 3, peerService: "p", hostname: "c-0" },
        ["x"],
      ],
      [
        "peer count without a service",
        { peerCount: 3, hostname: "cache-0" },
        [],
      ],
    ];
    for (const [name, options, names] of cases) {
      await t.step(name, () => {
        assert.deepEqual(siblingNames(options), names);
      });
    }
  },
);

Deno.test(
  "siblingNames() needs a StatefulSet ordinal to derive names",
  sanitized({}),
  () => {
    const err = throwsError(
      () => siblingNames({ peerCount: 2, peerService: "p", hostname: "box" }),
      RangeError,
    );
    assert.match(err.message, /host name "box" does not end in a StatefulSet/);
  },
);
