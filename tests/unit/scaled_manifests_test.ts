/**
 * Checks deploy/kubernetes-scaled/ against the image and the entrypoint:
 * the sibling names the entrypoint derives match the StatefulSet and its
 * headless service, each replica has its own cache volume where the
 * config keeps its cache, and probes, ports and security context are those
 * of the image.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseYamlDocuments, ROOT } from "../integration/_deploy_helpers.ts";
import {
  generatedConfigText,
  HTCP_PORT,
  siblingNames,
} from "../../src/generated_config.ts";
import { cacheDirs, requiredPaths } from "../../src/required_paths.ts";
import { readSquidConf } from "../../src/squid_conf.ts";

// deno-lint-ignore no-explicit-any
type Doc = any;

const OPTIONS = {
  permissions: { read: true, write: true, env: true },
  sanitizeOps: true,
  sanitizeResources: true,
};

function readYaml(path: string): Doc[] {
  return parseYamlDocuments(Deno.readTextFileSync(join(ROOT, path)));
}

function byKind(docs: Doc[], kind: string): Doc[] {
  return docs.filter((doc) => doc.kind === kind);
}

const DIR = "deploy/kubernetes-scaled";
const KUSTOMIZATION = readYaml(`${DIR}/kustomization.yaml`)[0];
const DOCS = (KUSTOMIZATION.resources as string[]).flatMap((file) =>
  readYaml(join(DIR, file))
);
const SET = byKind(DOCS, "StatefulSet")[0];
const POD = SET.spec.template.spec;
const CONTAINER = POD.containers[0];
const SERVICES = byKind(DOCS, "Service");
const HEADLESS = SERVICES.find((s: Doc) => s.spec.clusterIP === "None");
const CLIENT = SERVICES.find((s: Doc) => s.spec.clusterIP !== "None");
const ENV = Object.fromEntries(
  (CONTAINER.env as Doc[]).map((e) => [e.name, e.value]),
);
const CONF_TEXT: string = byKind(DOCS, "ConfigMap")[0].data["squid.conf"];

/** EXPOSE, USER and HEALTH_PORT of the Dockerfile's final stage. */
function imageFacts() {
  const text = Deno.readTextFileSync(join(ROOT, "Dockerfile"))
    .replace(/\\\n/g, " ");
  const final = text.slice(text.lastIndexOf("\nFROM "));
  const expose = /\nEXPOSE ([\d ]+)/.exec(final)![1].trim().split(/\s+/);
  const [uid, gid] = /\nUSER (\d+):(\d+)/.exec(final)!.slice(1).map(Number);
  const health = Number(/HEALTH_PORT=(\d+)/.exec(final)![1]);
  return { ports: expose.map(Number), uid, gid, health };
}

function readConf(text: string) {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(join(dir, "squid.conf"), text);
    return readSquidConf(join(dir, "squid.conf"));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test(
  "scaled manifests name siblings the way the entrypoint derives them",
  OPTIONS,
  () => {
    assert.equal(SET.spec.serviceName, HEADLESS.metadata.name);
    assert.equal(SET.spec.podManagementPolicy, "Parallel");
    assert.equal(HEADLESS.spec.publishNotReadyAddresses, true);
    assert.equal(Number(ENV.CEPHALOPROXY_PEER_COUNT), SET.spec.replicas);
    assert.equal(
      ENV.CEPHALOPROXY_PEER_SERVICE,
      `${HEADLESS.metadata.name}.$(POD_NAMESPACE).svc.cluster.local`,
    );
    const namespace = (CONTAINER.env as Doc[])
      .find((e) => e.name === "POD_NAMESPACE");
    assert.equal(namespace.valueFrom.fieldRef.fieldPath, "metadata.namespace");

    // Pod 1 of the set: its siblings are pods 0 and 2, by stable DNS name.
    const service = `${HEADLESS.metadata.name}.ns.svc.cluster.local`;
    const names = siblingNames({
      peerCount: Number(ENV.CEPHALOPROXY_PEER_COUNT),
      peerService: service,
      hostname: `${SET.metadata.name}-1`,
    });
    const expected = Array.from(
      { length: SET.spec.replicas },
      (_, i) => `${SET.metadata.name}-${i}.${service}`,
    ).filter((_, i) => i !== 1);
    assert.deepEqual(names, expected);
  },
);

Deno.test(
  "scaled manifests open HTCP and the proxy where the image listens",
  OPTIONS,
  () => {
    const image = imageFacts();
    const ports = Object.fromEntries(
      (CONTAINER.ports as Doc[]).map((p) => [p.name, p]),
    );
    assert.ok(image.ports.includes(ports.proxy.containerPort));
    assert.equal(ports.health.containerPort, image.health);
    assert.equal(ports.htcp.containerPort, HTCP_PORT);
    assert.equal(ports.htcp.protocol, "UDP");

    const headless = Object.fromEntries(
      (HEADLESS.spec.ports as Doc[]).map((p) => [p.name, p]),
    );
    assert.equal(headless.htcp.port, HTCP_PORT);
    assert.equal(headless.htcp.protocol, "UDP");
    assert.equal(headless.proxy.port, ports.proxy.containerPort);
    assert.equal(CLIENT.spec.ports[0].targetPort, "proxy");

    // The generated sibling lines allow HTCP from "localnet": the
    // ConfigMap's squid.conf must define it.
    const text = generatedConfigText("/etc/squid/squid.conf", {
      accessLogStdout: false,
      siblings: ["a"],
      siblingHttpPort: ports.proxy.containerPort,
    });
    assert.match(text, /^htcp_access allow localnet$/m);
    assert.match(CONF_TEXT, /^acl localnet src /m);
  },
);

Deno.test(
  "scaled manifests give each replica its own cache volume",
  OPTIONS,
  () => {
    const claims = SET.spec.volumeClaimTemplates as Doc[];
    assert.equal(claims.length, 1);
    assert.deepEqual(claims[0].spec.accessModes, ["ReadWriteOnce"]);

    const mounts = Object.fromEntries(
      (CONTAINER.volumeMounts as Doc[]).map((m) => [m.name, m.mountPath]),
    );
    const conf = readConf(CONF_TEXT);
    assert.deepEqual(
      cacheDirs(conf).map((dir) => dir.path),
      [mounts[claims[0].metadata.name]],
    );
    assert.ok(
      !(POD.volumes as Doc[]).some((v) => v.name === claims[0].metadata.name),
      "the cache must come from the claim template, not a shared volume",
    );

    // Every directory the config writes is a mounted volume (read-only root).
    const mounted = Object.values(mounts) as string[];
    for (const path of requiredPaths(conf)) {
      if (path.access === "readable-file") continue;
      const dir = path.access === "writable-dir"
        ? path.path
        : path.path.slice(0, path.path.lastIndexOf("/"));
      assert.ok(
        mounted.some((m) => dir === m || dir.startsWith(m + "/")),
        `${dir} (${path.directive}) is not on a volume`,
      );
    }
  },
);

Deno.test(
  "scaled manifests keep the probes and restricted security context",
  OPTIONS,
  () => {
    const image = imageFacts();
    assert.equal(CONTAINER.livenessProbe.httpGet.path, "/health");
    assert.equal(CONTAINER.readinessProbe.httpGet.path, "/ready");
    assert.equal(CONTAINER.startupProbe.httpGet.path, "/health");
    for (const probe of ["livenessProbe", "readinessProbe", "startupProbe"]) {
      assert.equal(CONTAINER[probe].httpGet.port, "health");
    }

    assert.equal(POD.securityContext.runAsNonRoot, true);
    assert.equal(POD.securityContext.runAsUser, image.uid);
    assert.equal(POD.securityContext.runAsGroup, image.gid);
    assert.equal(POD.securityContext.seccompProfile.type, "RuntimeDefault");
    assert.equal(CONTAINER.securityContext.readOnlyRootFilesystem, true);
    assert.equal(CONTAINER.securityContext.allowPrivilegeEscalation, false);
    assert.deepEqual(CONTAINER.securityContext.capabilities.drop, ["ALL"]);
    assert.ok(POD.terminationGracePeriodSeconds >= 30);

    const labels = SET.spec.template.metadata.labels;
    const pdb = byKind(DOCS, "PodDisruptionBudget")[0];
    for (const [k, v] of Object.entries(pdb.spec.selector.matchLabels)) {
      assert.equal(labels[k], v);
    }
    const hpa = byKind(DOCS, "HorizontalPodAutoscaler")[0];
    assert.equal(hpa.spec.scaleTargetRef.kind, "StatefulSet");
    assert.equal(hpa.spec.scaleTargetRef.name, SET.metadata.name);
    assert.equal(hpa.spec.maxReplicas, Number(ENV.CEPHALOPROXY_PEER_COUNT));
  },
);
