/**
 * Checks deploy/ against the image's real values: ports, user and the
 * health port from the Dockerfile, default paths from src/settings.ts, and
 * the directories Squid writes from the parsed configs (the same code the
 * entrypoint uses to check volumes). When kubectl is installed, its own
 * YAML reader (`kubectl kustomize`) must agree with the one used here.
 */

import {
  deepStrictEqual as assertEquals,
  ok as assert,
} from "node:assert/strict";
import { join } from "node:path";
import {
  followSslBumpComment,
  parseYamlDocuments,
  ROOT,
  type Yaml,
} from "../integration/_deploy_helpers.ts";
import { readSettings } from "../../src/settings.ts";
import { readSquidConf, type SquidConf } from "../../src/squid_conf.ts";
import {
  cacheDirs,
  requiredPaths,
  writableDirOf,
} from "../../src/required_paths.ts";
import { LEGACY_MERGED_PEM } from "../../src/tls.ts";

// deno-lint-ignore no-explicit-any
type Doc = any;

const PERMISSIONS: Deno.PermissionOptionsObject = {
  read: true,
  write: true,
  env: true,
  run: true,
};
const OPTIONS = {
  permissions: PERMISSIONS,
  sanitizeOps: true,
  sanitizeResources: true,
};

function readText(path: string): string {
  return Deno.readTextFileSync(join(ROOT, path));
}

function readYaml(path: string): Doc[] {
  return parseYamlDocuments(readText(path));
}

/** EXPOSE, USER and ENV of the Dockerfile's final stage. */
function dockerfileFacts() {
  const text = readText("Dockerfile").replace(/\\\n/g, " ");
  const lines = text.split("\n");
  const last = lines.findLastIndex((line) => /^FROM /.test(line));
  const final = lines.slice(last);
  const word = (name: string) =>
    final.filter((line) => line.startsWith(`${name} `))
      .map((line) => line.slice(name.length + 1).trim());
  const env: Record<string, string> = {};
  for (const line of word("ENV")) {
    for (const [, key, value] of line.matchAll(/(\w+)=(\S+)/g)) {
      env[key] = value;
    }
  }
  const [uid, gid] = word("USER")[0].split(":").map(Number);
  return {
    ports: word("EXPOSE").flatMap((line) => line.split(/\s+/)).map(Number),
    uid,
    gid,
    env,
  };
}

const IMAGE = dockerfileFacts();
const SETTINGS = readSettings([], () => undefined);
const HEALTH_PORT = Number(IMAGE.env.HEALTH_PORT);

/** Reads squid.conf text with the entrypoint's own reader. */
function parseConf(text: string): SquidConf {
  const dir = Deno.makeTempDirSync();
  try {
    const path = join(dir, "squid.conf");
    Deno.writeTextFileSync(path, text);
    return readSquidConf(path);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/**
 * Every directory Squid or the entrypoint writes for `conf`: the
 * directives' directories, and /var/lib/squid for the merged PEM.
 */
function writableDirs(conf: SquidConf): string[] {
  const dirs = new Set<string>();
  for (const path of requiredPaths(conf)) {
    if (path.access === "readable-file") {
      if (path.path === LEGACY_MERGED_PEM) dirs.add(writableDirOf(path));
      continue;
    }
    dirs.add(
      path.access === "creatable-dir"
        ? parentOf(path.path)
        : writableDirOf(path),
    );
  }
  return [...dirs].sort();
}

function parentOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/")) || "/";
}

function isUnder(path: string, root: string): boolean {
  return path === root || path.startsWith(root + "/");
}

function directivesOf(conf: SquidConf): string[] {
  return conf.directives.map((d) =>
    [d.name, ...d.tokens.map((t) => t.text)].join(" ")
  );
}

const DEFAULT_CONF = parseConf(readText("src/default-squid.conf"));
const CONFIG_MAP = readYaml("deploy/kubernetes/configmap.yaml")[0];
const K8S_CONF_TEXT: string = CONFIG_MAP.data["squid.conf"];
const DEPLOYMENT = readYaml("deploy/kubernetes/deployment.yaml")[0];
const POD = DEPLOYMENT.spec.template.spec;
const CONTAINER = POD.containers[0];
const COMPOSE = readYaml("deploy/docker-compose.yml")[0];
const PROXY = COMPOSE.services.cephaloproxy;

Deno.test("the YAML reader handles the subset deploy/ uses", OPTIONS, () => {
  const docs = parseYamlDocuments(
    '# c\na:\n  b: 1\n  c: "x" # note\n  d:\n  - e: true\n    f: []\n' +
      "  - 'it''s'\n  g: |\n    line 1\n    # kept\n\n    line 2\n---\nh: {}\n",
  );
  assertEquals(docs, [
    {
      a: {
        b: 1,
        c: "x",
        d: [{ e: true, f: [] }, "it's"],
        g: "line 1\n# kept\n\nline 2\n",
      },
    },
    { h: {} },
  ] as Yaml[]);
});

Deno.test(
  "the Deployment exposes the image's ports and probes its health port",
  OPTIONS,
  () => {
    assertEquals(IMAGE.ports.sort(), [3128, 8080]);
    const ports: Doc[] = CONTAINER.ports;
    assertEquals(ports.map((p) => p.containerPort).sort(), IMAGE.ports);
    const byName = new Map(ports.map((p) => [p.name, p.containerPort]));

    const probes = {
      livenessProbe: "/health",
      readinessProbe: "/ready",
      startupProbe: "/health",
    };
    for (const [probe, path] of Object.entries(probes)) {
      const get = CONTAINER[probe].httpGet;
      assertEquals(get.path, path, probe);
      const port = typeof get.port === "string"
        ? byName.get(get.port)
        : get.port;
      assertEquals(port, HEALTH_PORT, `${probe} port`);
    }
    assertEquals(byName.get("proxy"), SETTINGS.squidPort);
    assertEquals(SETTINGS.healthPort, HEALTH_PORT);
  },
);

Deno.test(
  "the Deployment runs as the image's user with a locked-down context",
  OPTIONS,
  () => {
    assertEquals(DEPLOYMENT.spec.replicas, 1);
    assertEquals(CONTAINER.image, "cephaloproxy:dev");
    assertEquals(POD.securityContext, {
      runAsNonRoot: true,
      runAsUser: IMAGE.uid,
      runAsGroup: IMAGE.gid,
      fsGroup: IMAGE.gid,
      seccompProfile: { type: "RuntimeDefault" },
    });
    assertEquals(CONTAINER.securityContext, {
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
    });
    assertEquals(POD.enableServiceLinks, false);

    // The grace period covers the drain the entrypoint waits for.
    assertEquals(POD.terminationGracePeriodSeconds, 30);
    const drain = CONTAINER.env.find((e: Doc) =>
      e.name === "CEPHALOPROXY_DRAIN_SECONDS"
    );
    const drainSeconds = Number(drain?.value ?? SETTINGS.drainSeconds);
    assert(drainSeconds < POD.terminationGracePeriodSeconds);
  },
);

Deno.test(
  "the Deployment mounts the config, the TLS secret and every writable path",
  OPTIONS,
  () => {
    const volumes = new Map<string, Doc>(
      POD.volumes.map((v: Doc) => [v.name, v]),
    );
    const mounts: Doc[] = CONTAINER.volumeMounts;
    const mountAt = (path: string) => mounts.find((m) => m.mountPath === path);

    const config = mountAt(SETTINGS.configPath);
    assert(config, `nothing mounted at ${SETTINGS.configPath}`);
    assertEquals(config.readOnly, true);
    const configMap = volumes.get(config.name).configMap;
    assertEquals(configMap.name, CONFIG_MAP.metadata.name);
    assert(config.subPath in CONFIG_MAP.data);

    const secret = mountAt(SETTINGS.sslCertDir);
    assert(secret, `nothing mounted at ${SETTINGS.sslCertDir}`);
    assertEquals(secret.readOnly, true);
    const source = volumes.get(secret.name).secret;
    assertEquals(source.optional, true);
    assertEquals(source.defaultMode, 0o440);

    // Writable: emptyDir or the PVC, never read-only.
    const writable = mounts.filter((m) => {
      const volume = volumes.get(m.name);
      return !m.readOnly && (volume.emptyDir || volume.persistentVolumeClaim);
    }).map((m) => m.mountPath);
    const k8sConf = parseConf(K8S_CONF_TEXT);
    const needed = new Set([
      ...writableDirs(k8sConf),
      ...writableDirs(parseConf(followSslBumpComment(K8S_CONF_TEXT))),
      IMAGE.env.DENO_DIR,
    ]);
    for (const dir of needed) {
      assert(
        writable.some((root) => isUnder(dir, root)),
        `${dir} is not on a writable volume (have ${writable.join(", ")})`,
      );
    }

    // The cache lives on the claim.
    const pvc = readYaml("deploy/kubernetes/pvc.yaml")[0];
    const cache = mountAt(cacheDirs(k8sConf)[0].path);
    assertEquals(
      volumes.get(cache!.name).persistentVolumeClaim.claimName,
      pvc.metadata.name,
    );
  },
);

Deno.test(
  "the ConfigMap is the default config with the cache sized for the claim",
  OPTIONS,
  () => {
    const k8sConf = parseConf(K8S_CONF_TEXT);
    const withoutCache = (conf: SquidConf) =>
      directivesOf(conf).filter((line) => !line.startsWith("cache_dir "));
    assertEquals(withoutCache(k8sConf), withoutCache(DEFAULT_CONF));

    // The entrypoint warns outside 60-100 % of the usable space (total less
    // 10 %): stay inside it on the claim's size.
    const pvc = readYaml("deploy/kubernetes/pvc.yaml")[0];
    const size = pvc.spec.resources.requests.storage as string;
    const totalMb = Number(size.replace(/Gi$/, "")) * 1024;
    const usable = totalMb * 0.9;
    const [dir] = cacheDirs(k8sConf);
    assert(dir.sizeMb <= usable && dir.sizeMb >= usable * 0.6, `${dir.sizeMb}`);

    // Following the comment in the ConfigMap turns SSL-bump on.
    const bumped = parseConf(followSslBumpComment(K8S_CONF_TEXT));
    assert(directivesOf(bumped).some((line) => line.includes(" ssl-bump ")));
    assert(
      directivesOf(bumped).some((line) => line.startsWith("sslcrtd_program")),
    );
  },
);

Deno.test(
  "the Service selects the pod and forwards to the proxy port",
  OPTIONS,
  () => {
    const service = readYaml("deploy/kubernetes/service.yaml")[0];
    const labels = DEPLOYMENT.spec.template.metadata.labels;
    for (const [key, value] of Object.entries(service.spec.selector)) {
      assertEquals(labels[key], value);
    }
    assertEquals(DEPLOYMENT.spec.selector.matchLabels, service.spec.selector);
    const [port] = service.spec.ports;
    const target = CONTAINER.ports.find((p: Doc) => p.name === port.targetPort);
    assertEquals(target.containerPort, SETTINGS.squidPort);
    assertEquals(port.port, SETTINGS.squidPort);

    const kustomization = readYaml("deploy/kubernetes/kustomization.yaml")[0];
    const files = [...Deno.readDirSync(join(ROOT, "deploy/kubernetes"))]
      .map((entry) => entry.name)
      .filter((name) => name !== "kustomization.yaml");
    assertEquals([...kustomization.resources].sort(), files.sort());
  },
);

Deno.test(
  "the compose file matches the image and covers every writable path",
  OPTIONS,
  () => {
    assertEquals(PROXY.image, "${CEPHALOPROXY_IMAGE:-cephaloproxy:dev}");
    assertEquals(PROXY.user, `${IMAGE.uid}:${IMAGE.gid}`);
    assertEquals(PROXY.read_only, true);
    assertEquals(PROXY.cap_drop, ["ALL"]);
    assertEquals(PROXY.stop_grace_period, "30s");
    assert(!("healthcheck" in PROXY), "the image's HEALTHCHECK is inherited");

    const ports = (PROXY.ports as string[]).map((spec) => {
      const [host, , container] = spec.split(":");
      return { host, container: Number(container) };
    });
    assert(ports.every((p) => p.host === "127.0.0.1"), "loopback only");
    assertEquals(ports.map((p) => p.container).sort(), IMAGE.ports);

    const writable = [
      ...(PROXY.volumes as string[]).map((spec) => spec.split(":")[1]),
      ...(PROXY.tmpfs as string[]),
    ];
    const needed = new Set([
      ...writableDirs(DEFAULT_CONF),
      ...writableDirs(
        parseConf(followSslBumpComment(readText("src/default-squid.conf"))),
      ),
      IMAGE.env.DENO_DIR,
    ]);
    for (const dir of needed) {
      assert(
        writable.some((root) => isUnder(dir, root)),
        `${dir} is not writable in the compose file`,
      );
    }
    // The cache and the logs outlive the container.
    assertEquals(
      (PROXY.volumes as string[]).map((spec) => spec.split(":")[1]).sort(),
      [cacheDirs(DEFAULT_CONF)[0].path, "/var/log/squid"].sort(),
    );
  },
);

Deno.test({
  name: "kubectl kustomize reads deploy/kubernetes/ as this test does",
  ...OPTIONS,
  ignore: !hasKubectl(),
  async fn() {
    const output = await new Deno.Command("kubectl", {
      args: ["kustomize", join(ROOT, "deploy/kubernetes")],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert(output.success, `kubectl kustomize failed: ${stderr}`);

    const key = (doc: Doc) => `${doc.kind}/${doc.metadata.name}`;
    const rendered = parseYamlDocuments(
      new TextDecoder().decode(output.stdout),
    ) as Doc[];
    const sources = ["configmap", "pvc", "deployment", "service"]
      .flatMap((name) => readYaml(`deploy/kubernetes/${name}.yaml`));
    const byKey = (docs: Doc[]) =>
      Object.fromEntries(docs.map((doc) => [key(doc), doc]));
    assertEquals(byKey(rendered), byKey(sources));
  },
});

function hasKubectl(): boolean {
  try {
    return new Deno.Command("kubectl", {
      args: ["version", "--client"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}
