import { Ajv, type ValidateFunction } from "ajv";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml, parseAllDocuments } from "yaml";
import { kafkaTopicsYaml, regenerateTopicsCommand } from "../cli/commands/deploy.ts";
import { topicSettings } from "../lib/bus/open-bus.ts";
import { ConfigSchema, envKeyToPath, loadConfig, type Config } from "../lib/config/index.ts";
import { TopicTable, Topics } from "../lib/contracts/index.ts";
import { meetsQdrantMinimum, parseQdrantVersion, QDRANT_MIN_VERSION } from "../lib/store/qdrant-version.ts";

/**
 * deploy/k8s checked offline, as a cluster would check it: kustomize (kubectl's) renders the base and every
 * overlay; each rendered object validates against its schema — core objects and KEDA's with the
 * kubernetes-models packages, Strimzi's against the CRDs' openAPIV3Schema — with unknown fields refused, as the
 * API server's strict field validation (kubectl's default) refuses them; every environment variable the
 * manifests set is a key of the config schema; and the manifests agree with the code they deploy (topic table,
 * consumer groups, shutdown bound, ports). The Dockerfile goes through hadolint.
 */

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const k8sDir = path.join(root, "deploy/k8s");
const toolsDir = path.join(root, ".vigil/tools/bin");
const kubectl = process.env.VIGIL_KUBECTL ?? path.join(toolsDir, "kubectl");
const hadolint = process.env.VIGIL_HADOLINT ?? path.join(toolsDir, "hadolint");
const strimziDir = process.env.VIGIL_STRIMZI_CRDS ?? path.resolve(root, "../shared/k8s-schemas/strimzi");
const baseConfigFile = path.join(k8sDir, "base/vigil.config.json");
const topicsFile = path.join(k8sDir, "base/kafka-topics.yaml");
const require = createRequire(import.meta.url);

const STAGES = ["ingest", "detect-align", "embed", "match", "api"] as const;
/** The topic each consuming stage reads (services/<stage>/stage.ts: `input`). */
const STAGE_INPUT: Record<string, string> = {
  "detect-align": Topics.frames,
  embed: Topics.faces,
  match: Topics.embeddings,
};
const GPU_STAGES = ["detect-align", "embed"];
/** Seconds of grace beyond service.shutdownTimeoutS: the kubelet's own latency and the exit itself. */
const GRACE_MARGIN = { min: 5, max: 30 };
/**
 * Environment variables that are not config keys, each with the reason it is set all the same. Anything else a
 * manifest sets must map (lib/config/load.ts) to a key the schema has.
 */
const NON_CONFIG_ENV: Record<string, string> = {
  NODE_EXTRA_CA_CERTS:
    "Node.js's own: the CA of the Kafka brokers' certificates (bus.kafka has no CA setting)",
};
/** Egress of each workload; the object store for crops (443) is added where the config puts crops there. */
const STAGE_EGRESS_PORTS: Record<string, number[]> = {
  ingest: [53, 554, 8554, 9092, 9093],
  "detect-align": [53, 9092, 9093],
  embed: [53, 9092, 9093],
  match: [53, 5432, 6333, 9092, 9093],
  api: [53, 5432, 6333, 9092, 9093],
};
/** Workloads that read or write crops (ingest: the clips it cuts): they reach the object store when crops are kept there. */
const CROP_READERS = ["match", "api", "ingest"];

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: unknown;
  data?: Record<string, string>;
  [key: string]: unknown;
}
// Rendered YAML is walked freely below; `any` is confined to that.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

const id = (o: K8sObject) => `${o.kind}/${o.metadata?.name}`;
/** A Deployment or StatefulSet of Vigil's own (not a dependency an overlay runs beside it, like dev's database). */
const isVigilWorkload = (o: K8sObject) =>
  (o.kind === "Deployment" || o.kind === "StatefulSet") &&
  o.metadata.labels?.["app.kubernetes.io/name"] === "vigil";

function requireTool(file: string, what: string) {
  if (!existsSync(file)) {
    throw new Error(
      `${what} is not installed at ${file}: run \`bash scripts/k8s-tools.sh\` (npm test's setup does)`,
    );
  }
}

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", cwd: root, maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  if (r.status !== 0)
    throw new Error(`${path.basename(cmd)} ${args.join(" ")} failed:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

function render(dir: string): K8sObject[] {
  const text = run(kubectl, ["kustomize", dir]);
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${dir}: ${doc.errors[0]!.message}`);
      return doc.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

// ---------------------------------------------------------------------------------------------------------------
// Schemas: kubernetes-models (core, KEDA), Strimzi's CRDs (ajv).

/** The kubernetes-models module of an object, or undefined when no package there has its schema. */
function modelModule(apiVersion: string, kind: string): string | undefined {
  const spec = apiVersion.startsWith("keda.sh/")
    ? `@kubernetes-models/keda/${apiVersion}/${kind}`
    : `kubernetes-models/${apiVersion}/${kind}`;
  try {
    require.resolve(spec);
    return spec;
  } catch {
    return undefined;
  }
}

interface Model {
  validate(): void;
}
type ModelClass = new (data: unknown) => Model;
const models = new Map<string, ModelClass>();

async function loadModel(apiVersion: string, kind: string): Promise<ModelClass | undefined> {
  const key = `${apiVersion}/${kind}`;
  if (!models.has(key)) {
    const spec = modelModule(apiVersion, kind);
    if (!spec) return undefined;
    const mod = (await import(spec)) as Record<string, ModelClass>;
    models.set(key, mod[kind]!);
  }
  return models.get(key);
}

/**
 * Adds `additionalProperties: false` to every object schema that lists its properties and does not say it keeps
 * unknown fields: what the API server's strict field validation does with a CRD's structural schema.
 */
function strictSchema(schema: Loose): Loose {
  if (Array.isArray(schema)) return schema.map(strictSchema);
  if (typeof schema !== "object" || schema === null) return schema;
  const out: Loose = {};
  for (const [k, v] of Object.entries(schema)) {
    out[k] =
      k === "properties"
        ? Object.fromEntries(Object.entries(v as object).map(([p, s]) => [p, strictSchema(s)]))
        : k === "items" || k === "additionalProperties" || k === "allOf" || k === "anyOf" || k === "oneOf"
          ? strictSchema(v)
          : v;
  }
  if (
    out.properties &&
    out.additionalProperties === undefined &&
    out["x-kubernetes-preserve-unknown-fields"] !== true
  ) {
    out.additionalProperties = false;
  }
  return out;
}

function loadCrdValidators(): Map<string, ValidateFunction> {
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  const validators = new Map<string, ValidateFunction>();
  for (const file of readdirSync(strimziDir).filter((f) => f.endsWith(".yaml"))) {
    const crd = parseYaml(readFileSync(path.join(strimziDir, file), "utf8")) as Loose;
    for (const version of crd.spec.versions) {
      if (!version.served) continue;
      const key = `${crd.spec.group}/${version.name}/${crd.spec.names.kind}`;
      validators.set(key, ajv.compile(strictSchema(version.schema.openAPIV3Schema)));
    }
  }
  return validators;
}

/**
 * Unknown fields in core and KEDA objects: kubernetes-models' validators accept any extra property, so the
 * rendered objects are also type-checked against the same package's TypeScript interfaces, where an object
 * literal with a property its interface lacks is an error ("excess property"). A custom resource's metadata,
 * which its CRD leaves to the API server, is checked as ObjectMeta the same way. One program for all objects.
 */
const declarations = new Map<string, ts.SourceFile | undefined>();

function unknownFieldErrors(objects: K8sObject[]): string[] {
  const file = path.join(root, "test", ".k8s-rendered-objects.ts");
  const imports: string[] = [];
  const lines: string[] = [];
  const owner: { from: number; object: K8sObject }[] = [];
  imports.push(`import type { IConfigMap } from "kubernetes-models/v1/ConfigMap";`);
  imports.push(`type ObjectMeta = NonNullable<IConfigMap["metadata"]>;`);
  objects.forEach((o, i) => {
    const spec = modelModule(o.apiVersion, o.kind);
    owner.push({ from: lines.length + 1, object: o });
    if (spec) {
      imports.push(`import type { I${o.kind} as T${i} } from "${spec}";`);
      lines.push(...`export const o${i}: T${i} = ${JSON.stringify(o, null, 1)};`.split("\n"));
    } else {
      lines.push(...`export const o${i}: ObjectMeta = ${JSON.stringify(o.metadata, null, 1)};`.split("\n"));
    }
  });
  const source = [...imports, ...lines].join("\n");
  const offset = imports.length;
  const host = ts.createCompilerHost({});
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.getSourceFile = (f, language, ...rest) => {
    if (f === file) return ts.createSourceFile(f, source, language);
    // The packages' declaration files are parsed once for every call.
    if (!declarations.has(f)) declarations.set(f, getSourceFile(f, language, ...rest));
    return declarations.get(f);
  };
  host.fileExists = (f) => f === file || fileExists(f);
  const program = ts.createProgram(
    [file],
    {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      skipLibCheck: true,
      types: [],
    },
    host,
  );
  const sourceFile = program.getSourceFile(file)!;
  return ts.getPreEmitDiagnostics(program, sourceFile).map((d) => {
    const line = d.start === undefined ? 0 : sourceFile.getLineAndCharacterOfPosition(d.start).line + 1;
    const o = [...owner].reverse().find((w) => w.from + offset <= line)?.object;
    return `${o ? id(o) : "?"}: ${ts.flattenDiagnosticMessageText(d.messageText, " ")}`;
  });
}

let crdValidators: Map<string, ValidateFunction>;
let configMap: ModelClass;

/** Every schema error of the objects; empty when all of them would be accepted. */
async function schemaErrors(objects: K8sObject[]): Promise<string[]> {
  const errors: string[] = [];
  for (const o of objects) {
    const crd = crdValidators.get(`${o.apiVersion}/${o.kind}`);
    if (crd) {
      if (!crd(o)) {
        for (const e of crd.errors ?? []) {
          const extra =
            e.keyword === "additionalProperties" ? ` '${String(e.params.additionalProperty)}'` : "";
          errors.push(`${id(o)}: ${e.instancePath || "/"} ${e.message}${extra}`);
        }
      }
      try {
        // The ObjectMeta schema, through the simplest core object that holds nothing else.
        new configMap({ metadata: o.metadata }).validate();
      } catch (err) {
        errors.push(`${id(o)}: metadata: ${(err as Error).message}`);
      }
      continue;
    }
    const Model = await loadModel(o.apiVersion, o.kind);
    if (!Model) {
      errors.push(`${id(o)}: no schema for ${o.apiVersion} ${o.kind}`);
      continue;
    }
    try {
      new Model(o).validate();
    } catch (err) {
      errors.push(`${id(o)}: ${(err as Error).message}`);
    }
  }
  return [...errors, ...unknownFieldErrors(objects)];
}

// ---------------------------------------------------------------------------------------------------------------
// The config every stage's container ends up with.

/** The zod schema at a dotted path, or undefined when the config has no such key. */
function schemaAt(dotted: string): Loose {
  let node: Loose = ConfigSchema;
  for (const part of dotted.split(".")) {
    for (;;) {
      const t = node?.def?.type;
      if (t === "default" || t === "prefault" || t === "optional" || t === "nullable")
        node = node.def.innerType;
      else if (t === "pipe") node = node.def.in;
      else break;
    }
    const t = node?.def?.type;
    if (t === "record") return node.def.valueType;
    if (t !== "object") return undefined;
    node = node.def.shape[part];
    if (!node) return undefined;
  }
  return node;
}

/** Why an environment variable a manifest sets is not acceptable, or undefined when it is. */
function envProblem(name: string): string | undefined {
  if (name === "VIGIL_CONFIG") return undefined;
  if (NON_CONFIG_ENV[name]) return undefined;
  const dotted = envKeyToPath(name);
  if (!dotted) return `${name} is neither a VIGIL_ config key nor a known runtime variable`;
  if (!schemaAt(dotted)) return `${name} maps to ${dotted}, which lib/config/schema.ts does not have`;
  return undefined;
}

/**
 * A stand-in for a value that only the cluster knows (a Secret's, or the pod's own name: a StatefulSet's first pod
 * ends in -0), of the type the key takes.
 */
function placeholder(name: string, valueFrom: Loose): string {
  if (valueFrom?.fieldRef?.fieldPath === "metadata.name") return "pod-0";
  const dotted = envKeyToPath(name);
  let node = dotted ? schemaAt(dotted) : undefined;
  while (["default", "prefault", "optional", "nullable"].includes(node?.def?.type)) node = node.def.innerType;
  const t = node?.def?.type;
  return t === "array" ? "[]" : t === "number" ? "1" : t === "boolean" ? "true" : "from-a-secret";
}

interface Workload {
  overlay: string;
  deployment: Loose;
  pod: Loose;
  container: Loose;
  config: Config;
}

function workloads(overlay: string, objects: K8sObject[], tmp: string): Workload[] {
  return objects.filter(isVigilWorkload).map((deployment: Loose) => {
    const pod = deployment.spec.template.spec;
    const container = pod.containers[0];
    const env: Record<string, string> = {};
    for (const e of container.env ?? [])
      env[e.name] = e.valueFrom ? placeholder(e.name, e.valueFrom) : String(e.value);
    const configPath = env.VIGIL_CONFIG;
    if (!configPath) throw new Error(`${overlay} ${id(deployment)}: VIGIL_CONFIG is not set`);
    const mount = container.volumeMounts.find((m: Loose) => m.mountPath === path.dirname(configPath));
    const volume = pod.volumes.find((v: Loose) => v.name === mount?.name);
    const configMap = objects.find(
      (o) => o.kind === "ConfigMap" && o.metadata.name === volume?.configMap?.name,
    );
    const text = configMap?.data?.[path.basename(configPath)];
    if (text === undefined)
      throw new Error(`${overlay} ${id(deployment)}: no ConfigMap file at ${configPath}`);
    const file = path.join(tmp, `${overlay.replace(/\W/g, "_")}-${deployment.metadata.name}.json`);
    writeFileSync(file, text);
    // Only what the manifests set: never this test process's own VIGIL_ variables.
    delete env.VIGIL_CONFIG;
    return { overlay, deployment, pod, container, config: loadConfig({ file, env }) };
  });
}

// ---------------------------------------------------------------------------------------------------------------

const targets = [
  "base",
  ...readdirSync(path.join(k8sDir, "overlays"))
    .filter((d) => existsSync(path.join(k8sDir, "overlays", d, "kustomization.yaml")))
    .map((d) => `overlays/${d}`),
];
const rendered = new Map<string, K8sObject[]>();
let tmp: string;

beforeAll(async () => {
  requireTool(kubectl, "kubectl");
  if (!existsSync(strimziDir)) throw new Error(`Strimzi CRDs not found at ${strimziDir}`);
  tmp = mkdtempSync(path.join(os.tmpdir(), "vigil-k8s-"));
  crdValidators = loadCrdValidators();
  configMap = (await loadModel("v1", "ConfigMap"))!;
  for (const t of targets) rendered.set(t, render(path.join(k8sDir, t)));
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe("kustomize renders", () => {
  it("the base and every overlay, each with a Deployment per stage (ingest: a StatefulSet, one pod per shard)", () => {
    expect(targets).toEqual(expect.arrayContaining(["base", "overlays/dev", "overlays/prod"]));
    for (const t of targets) {
      const workloads = rendered.get(t)!.filter(isVigilWorkload);
      expect(workloads.map((d) => `${d.kind}/${d.metadata.name}`).sort(), t).toEqual(
        STAGES.map((s) => `${s === "ingest" ? "StatefulSet" : "Deployment"}/${s}`).sort(),
      );
      for (const o of rendered.get(t)!) {
        expect(o.metadata.namespace, `${t} ${id(o)}`).toBe(o.kind === "Namespace" ? undefined : "vigil");
      }
    }
  });

  it("prod autoscales detect-align, embed and match on consumer lag (KEDA)", () => {
    const scaled = rendered
      .get("overlays/prod")!
      .filter((o) => o.kind === "ScaledObject")
      .map((o: Loose) => o.spec.scaleTargetRef.name);
    expect(scaled.sort()).toEqual(["detect-align", "embed", "match"]);
  });
});

describe("every rendered object validates against its schema", () => {
  for (const t of targets) {
    it(t, async () => {
      expect(await schemaErrors(rendered.get(t)!)).toEqual([]);
    });
  }
});

interface Misspelling {
  label: string;
  kind: string;
  name: string;
  change: (o: Loose) => void;
  expected: RegExp;
}

const rename = (obj: Loose, from: string, to: string) => {
  obj[to] = obj[from];
  delete obj[from];
};

const MISSPELLINGS: Misspelling[] = [
  {
    label: "Deployment: container `resourcez`",
    kind: "Deployment",
    name: "embed",
    change: (o) => rename(o.spec.template.spec.containers[0], "resources", "resourcez"),
    expected: /resourcez/,
  },
  {
    label: "Deployment: probe `paht`",
    kind: "Deployment",
    name: "match",
    change: (o) => rename(o.spec.template.spec.containers[0].readinessProbe.httpGet, "path", "paht"),
    expected: /paht/,
  },
  {
    label: "StatefulSet: replicas as a string",
    kind: "StatefulSet",
    name: "ingest",
    change: (o) => (o.spec.replicas = "1"),
    expected: /replicas must be integer/,
  },
  {
    label: "ScaledObject: `minReplicaCont`",
    kind: "ScaledObject",
    name: "embed",
    change: (o) => rename(o.spec, "minReplicaCount", "minReplicaCont"),
    expected: /minReplicaCont/,
  },
  {
    label: "KafkaTopic: `partitons`",
    kind: "KafkaTopic",
    name: "vigil.frames",
    change: (o) => rename(o.spec, "partitions", "partitons"),
    expected: /partitons/,
  },
  {
    label: "Kafka: listener `tsl`",
    kind: "Kafka",
    name: "vigil",
    change: (o) => (o.spec.kafka.listeners[0].tsl = true),
    expected: /tsl/,
  },
  {
    label: "KafkaNodePool: role `brokers`",
    kind: "KafkaNodePool",
    name: "broker",
    change: (o) => (o.spec.roles = ["brokers"]),
    expected: /roles\/0 must be equal to one of the allowed values/,
  },
  {
    label: "Kafka: metadata `labelz`",
    kind: "Kafka",
    name: "vigil",
    change: (o) => rename(o.metadata, "namespace", "labelz"),
    expected: /labelz/,
  },
];

describe("a misspelled or mistyped field fails validation", () => {
  for (const m of MISSPELLINGS) {
    it(m.label, async () => {
      const o = structuredClone(rendered.get("overlays/prod")!).find(
        (x) => x.kind === m.kind && x.metadata.name === m.name,
      );
      if (!o) throw new Error(`overlays/prod has no ${m.kind} ${m.name}`);
      m.change(o);
      const errors = await schemaErrors([o]);
      expect(errors.length, "no error").toBeGreaterThan(0);
      expect(errors.join("\n")).toMatch(m.expected);
    });
  }

  it("a misspelled config key in an environment variable", () => {
    expect(envProblem("VIGIL_BUS__KAFKA__BROKRES")).toMatch(/bus\.kafka\.brokres/);
    expect(envProblem("VIGIL_MODELS__EXECUTION_PROVIDR")).toMatch(/models\.executionProvidr/);
    expect(envProblem("KAFKA_PASSWORD")).toMatch(/neither/);
    expect(envProblem("VIGIL_BUS__KAFKA__SASL__PASSWORD")).toBeUndefined();
  });
});

describe("the manifests agree with the code they deploy", () => {
  for (const t of targets.filter((x) => x.startsWith("overlays/"))) {
    describe(t, () => {
      let objects: K8sObject[];
      let all: Workload[];
      beforeAll(() => {
        objects = rendered.get(t)!;
        all = workloads(t, objects, tmp);
      });
      const find = (kind: string, name?: string): Loose[] =>
        objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));

      it("every environment variable is a config key; the config validates; no envFrom", () => {
        for (const w of all) {
          for (const e of w.container.env ?? [])
            expect(envProblem(e.name), `${w.container.name}`).toBeUndefined();
          expect(w.container.envFrom, w.container.name).toBeUndefined();
          expect(w.config.bus.kind).toBe("kafka");
          // Models are in the image; a pod reaches no model store (NetworkPolicies).
          expect(w.config.models.sources).toEqual(["mirror"]);
        }
        for (const cm of find("ConfigMap")) {
          for (const [key, text] of Object.entries((cm.data ?? {}) as Record<string, string>)) {
            expect(ConfigSchema.safeParse(JSON.parse(text)).error, `${id(cm)} ${key}`).toBeUndefined();
          }
        }
      });

      it("Secrets are referenced, never inlined", () => {
        expect(find("Secret")).toEqual([]);
        for (const w of all) {
          for (const e of w.container.env ?? []) {
            if (/PASSWORD|API_KEY|SECRET|TOKEN|CAMERAS/.test(e.name)) {
              expect(e.valueFrom?.secretKeyRef, `${w.container.name} ${e.name}`).toBeDefined();
            }
            expect(String(e.value ?? ""), e.name).not.toMatch(/:\/\/[^/\s]*:[^/\s]*@/);
          }
        }
      });

      it("probes, ports, grace period, resources and security context", () => {
        for (const w of all) {
          const { container: c, pod, config } = w;
          const port = c.ports.find((p: Loose) => p.name === "http")?.containerPort;
          expect(port, c.name).toBe(config.service.port);
          expect(c.readinessProbe.httpGet, c.name).toMatchObject({ path: "/readyz", port: "http" });
          expect(c.livenessProbe.httpGet, c.name).toMatchObject({ path: "/healthz", port: "http" });
          expect(c.args, c.name).toEqual(["serve", w.deployment.metadata.name]);
          const grace = pod.terminationGracePeriodSeconds;
          expect(grace, c.name).toBeGreaterThanOrEqual(config.service.shutdownTimeoutS + GRACE_MARGIN.min);
          expect(grace, c.name).toBeLessThanOrEqual(config.service.shutdownTimeoutS + GRACE_MARGIN.max);
          for (const k of ["requests", "limits"]) {
            expect(c.resources[k]?.cpu, `${c.name} ${k}`).toBeDefined();
            expect(c.resources[k]?.memory, `${c.name} ${k}`).toBeDefined();
          }
          expect(pod.securityContext.runAsNonRoot, c.name).toBe(true);
          expect(c.securityContext, c.name).toMatchObject({
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            capabilities: { drop: ["ALL"] },
          });
          expect(find("PodDisruptionBudget", c.name), c.name).toHaveLength(1);
        }
      });

      it("GPU stages request a GPU and select CUDA in prod; nothing else does", () => {
        const prod = t === "overlays/prod";
        for (const w of all) {
          const gpu = prod && GPU_STAGES.includes(w.container.name);
          expect(w.container.resources.limits["nvidia.com/gpu"], w.container.name).toBe(
            gpu ? "1" : undefined,
          );
          expect(w.config.models.executionProvider, w.container.name).toBe(gpu ? "cuda" : "cpu");
          expect(w.container.image.endsWith("-gpu"), w.container.name).toBe(gpu);
        }
      });

      it("one autoscaler per consuming stage, on its group and input topic; ingest one pod per shard", () => {
        const ingest = all.find((w) => w.container.name === "ingest")!;
        // Each pod decodes the shard its ordinal names, of as many shards as there are pods.
        expect(ingest.deployment.kind).toBe("StatefulSet");
        expect(ingest.config.ingest.shard.count).toBe(ingest.deployment.spec.replicas);
        const pod = ingest.container.env.find((e: Loose) => e.name === "VIGIL_INGEST__SHARD__POD");
        expect(pod.valueFrom.fieldRef.fieldPath).toBe("metadata.name");
        const kafka = find("Kafka")[0];
        for (const w of all.filter((x) => STAGE_INPUT[x.container.name])) {
          const stage = w.container.name;
          const scaled = find("ScaledObject").filter((o) => o.spec.scaleTargetRef.name === stage);
          const hpas = find("HorizontalPodAutoscaler").filter((o) => o.spec.scaleTargetRef.name === stage);
          expect(scaled.length + hpas.length, stage).toBe(1);
          // The autoscaler owns the count; a replicas field would reset it on every apply.
          expect(w.deployment.spec.replicas, stage).toBeUndefined();
          const { config } = w;
          const input = topicSettings(config).find(
            (s) => s.name === `${config.bus.topicPrefix}${STAGE_INPUT[stage]}`,
          )!;
          for (const o of scaled) {
            const trigger = o.spec.triggers.find((x: Loose) => x.type === "kafka");
            expect(trigger.metadata.consumerGroup).toBe(
              `${config.bus.topicPrefix}${config.service.group ?? stage}`,
            );
            expect(trigger.metadata.topic).toBe(input.name);
            expect(o.spec.maxReplicaCount).toBeLessThanOrEqual(input.partitions);
            // KEDA's operator runs in its own namespace: the same brokers, by their full name.
            const [host, port] = config.bus.kafka.brokers[0]!.split(":");
            expect(trigger.metadata.bootstrapServers).toBe(`${host}.${o.metadata.namespace}.svc:${port}`);
            expect(trigger.metadata.tls === "enable").toBe(config.bus.kafka.ssl);
            const listener = kafka.spec.kafka.listeners.find((l: Loose) => String(l.port) === port);
            expect(!!listener?.authentication, stage).toBe(!!trigger.authenticationRef);
            if (trigger.authenticationRef) {
              expect(find("TriggerAuthentication", trigger.authenticationRef.name)).toHaveLength(1);
            }
          }
          for (const o of hpas) expect(o.spec.maxReplicas).toBeLessThanOrEqual(input.partitions);
        }
      });

      it("Kafka: the brokers the config names, listening where the config says, with the table's topics", () => {
        const [kafka] = find("Kafka");
        expect(find("Kafka")).toHaveLength(1);
        const cluster = kafka.metadata.name;
        for (const w of all) {
          for (const broker of w.config.bus.kafka.brokers) {
            const [host, port] = broker.split(":");
            expect(host).toBe(`${cluster}-kafka-bootstrap`);
            const listener = kafka.spec.kafka.listeners.find((l: Loose) => String(l.port) === port);
            expect(listener, broker).toBeDefined();
            expect(listener.tls).toBe(w.config.bus.kafka.ssl);
            expect(!!listener.authentication).toBe(!!w.config.bus.kafka.sasl);
            if (w.config.bus.kafka.sasl) {
              expect(`scram-sha-512`).toBe(listener.authentication.type);
              expect(w.config.bus.kafka.sasl.mechanism).toBe("scram-sha-512");
            }
          }
        }
        for (const o of [...find("KafkaNodePool"), ...find("KafkaTopic")]) {
          expect(o.metadata.labels?.["strimzi.io/cluster"], id(o)).toBe(cluster);
        }
        expect(find("KafkaNodePool").some((p) => p.spec.roles.includes("controller"))).toBe(true);
        expect(find("KafkaNodePool").some((p) => p.spec.roles.includes("broker"))).toBe(true);
        const want = topicSettings(all[0]!.config).map((s) => ({
          topicName: s.name,
          partitions: s.partitions,
          config: { "retention.ms": s.retentionMs, "max.message.bytes": s.maxMessageBytes },
        }));
        const byName = (a: { topicName: string }, b: { topicName: string }) =>
          a.topicName.localeCompare(b.topicName);
        expect(
          find("KafkaTopic")
            .map((o) => o.spec)
            .sort(byName),
        ).toEqual(want.sort(byName));
        expect(want).toHaveLength(TopicTable.length);
      });

      it("NetworkPolicies: a stage reaches DNS, Kafka and what it alone needs, nothing more", () => {
        const policies = find("NetworkPolicy");
        for (const w of all) {
          const labels = w.deployment.spec.template.metadata.labels;
          const applies = policies.filter((p) =>
            Object.entries(p.spec.podSelector.matchLabels ?? {}).every(([k, v]) => labels[k] === v),
          );
          const denyAll = applies.find(
            (p) =>
              !p.spec.egress &&
              !p.spec.ingress &&
              ["Ingress", "Egress"].every((x) => p.spec.policyTypes.includes(x)),
          );
          expect(denyAll, w.container.name).toBeDefined();
          const ports = applies
            .flatMap((p) => p.spec.egress ?? [])
            .flatMap((rule: Loose) => {
              expect(rule.ports?.length, `${w.container.name}: an egress rule without ports`).toBeGreaterThan(
                0,
              );
              return rule.ports.map((p: Loose) => p.port as number);
            });
          // Crops in object storage: match (writes) and the API (serves) also reach the bucket's HTTPS endpoint.
          const objectStore =
            CROP_READERS.includes(w.container.name) && w.config.store.crops.kind === "s3" ? [443] : [];
          expect(
            [...new Set(ports)].sort((a, b) => a - b),
            w.container.name,
          ).toEqual([...STAGE_EGRESS_PORTS[w.container.name]!, ...objectStore].sort((a, b) => a - b));
        }
        const [kafka] = find("Kafka");
        for (const l of kafka.spec.kafka.listeners) {
          expect(l.networkPolicyPeers, l.name).toContainEqual({
            podSelector: { matchLabels: { "app.kubernetes.io/name": "vigil" } },
          });
        }
      });

      it("the API: a consumer group per pod, its port behind a Service, reached from the ingress controller only", () => {
        const api = all.find((w) => w.container.name === "api")!;
        const { container: c, pod, config, deployment } = api;
        // Each API process must hear every alert for its own streams (services/api/live.ts): a group per pod.
        const group = (c.env ?? []).find((e: Loose) => e.name === "VIGIL_SERVICE__GROUP");
        expect(group?.valueFrom?.fieldRef?.fieldPath).toBe("metadata.name");
        // Reachable from outside the pod, on the port its Service targets.
        expect(config.api.host).toBe("0.0.0.0");
        expect(c.ports.find((p: Loose) => p.name === "api")?.containerPort).toBe(config.api.port);
        const services = find("Service").filter((o) =>
          Object.entries(o.spec.selector as Record<string, string>).every(
            ([k, v]) => deployment.spec.template.metadata.labels[k] === v,
          ),
        );
        expect(services.map((o) => o.metadata.name)).toEqual(["api"]);
        expect(services[0].spec.ports).toEqual([
          { name: "api", port: config.api.port, targetPort: "api", protocol: "TCP" },
        ]);
        // Keys, the audit log and webhooks in PostgreSQL, its URL (with the password) from a Secret: no volume of
        // its own, so any number of replicas, spread over nodes, updated without ever dropping below two.
        expect(config.store.records.kind).toBe("postgres");
        const url = (c.env ?? []).find((e: Loose) => e.name === "VIGIL_STORE__RECORDS__URL");
        expect(url?.valueFrom?.secretKeyRef).toEqual({ name: "vigil-postgres", key: "url" });
        expect(pod.volumes.filter((v: Loose) => v.persistentVolumeClaim)).toEqual([]);
        expect(find("PersistentVolumeClaim")).toEqual([]);
        expect(deployment.spec.replicas).toBeGreaterThanOrEqual(2);
        expect(deployment.spec.strategy).toEqual({
          type: "RollingUpdate",
          rollingUpdate: { maxSurge: 1, maxUnavailable: 0 },
        });
        expect(pod.topologySpreadConstraints?.[0]).toMatchObject({
          topologyKey: "kubernetes.io/hostname",
          labelSelector: { matchLabels: deployment.spec.selector.matchLabels },
        });
        expect(find("PodDisruptionBudget", "api")[0].spec.maxUnavailable).toBeLessThan(
          deployment.spec.replicas,
        );
        // Inbound: metrics from monitoring for every workload; the API's port only from the ingress controller.
        const policies = find("NetworkPolicy");
        for (const w of all) {
          const labels = w.deployment.spec.template.metadata.labels;
          const rules = policies
            .filter((p) =>
              Object.entries(p.spec.podSelector.matchLabels ?? {}).every(([k, v]) => labels[k] === v),
            )
            .flatMap((p) => p.spec.ingress ?? []);
          const byPort = new Map<number, Loose[]>();
          for (const rule of rules) {
            expect(rule.ports?.length, `${w.container.name}: an ingress rule without ports`).toBeGreaterThan(
              0,
            );
            expect(rule.from?.length, `${w.container.name}: an ingress rule from anywhere`).toBeGreaterThan(
              0,
            );
            for (const p of rule.ports) byPort.set(p.port, [...(byPort.get(p.port) ?? []), ...rule.from]);
          }
          const want = w === api ? [config.api.port, config.service.port] : [config.service.port];
          expect(
            [...byPort.keys()].sort((a, b) => a - b),
            w.container.name,
          ).toEqual(want.sort((a, b) => a - b));
        }
        const apiRules = policies
          .filter((p) => p.spec.podSelector.matchLabels?.["app.kubernetes.io/component"] === "api")
          .flatMap((p) => p.spec.ingress ?? []);
        const peers = apiRules
          .filter((r: Loose) => r.ports.some((p: Loose) => p.port === config.api.port))
          .flatMap((r: Loose) => r.from);
        expect(peers).toEqual([
          { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "ingress-nginx" } } },
        ]);
        // The peer is a proxy, so the audit log takes the client's address from X-Forwarded-For.
        expect(config.api.trustProxy).toBe(true);
      });

      it.runIf(t === "overlays/prod")(
        "no single point of failure in prod: every stage two pods or more, ingest's shards excepted",
        () => {
          for (const w of all) {
            const stage = w.container.name;
            if (stage === "ingest") continue; // one pod per camera shard, by design (ingest.yaml)
            const scaled = find("ScaledObject").find((o) => o.spec.scaleTargetRef.name === stage);
            const hpa = find("HorizontalPodAutoscaler").find((o) => o.spec.scaleTargetRef.name === stage);
            const least = scaled?.spec.minReplicaCount ?? hpa?.spec.minReplicas ?? w.deployment.spec.replicas;
            expect(least, stage).toBeGreaterThanOrEqual(2);
          }
          // Nothing else runs a single pod here: the database, Qdrant and Kafka are the site's or replicated.
          const others = objects.filter(
            (o) => (o.kind === "Deployment" || o.kind === "StatefulSet") && !isVigilWorkload(o),
          );
          expect(others.map(id)).toEqual([]);
        },
      );

      it("PostgreSQL: the API and match reach it, nothing else does; dev runs one, prod names the site's", () => {
        const users = ["api", "match"];
        const secrets = new Set<string>();
        for (const w of all.filter((x) => users.includes(x.container.name))) {
          expect(w.config.store.records.kind, w.container.name).toBe("postgres");
          const ref = (w.container.env as Loose[]).find((e) => e.name === "VIGIL_STORE__RECORDS__URL")
            ?.valueFrom?.secretKeyRef;
          expect(ref, w.container.name).toEqual({ name: "vigil-postgres", key: "url" });
          secrets.add(ref.name);
        }
        for (const w of all.filter((x) => !users.includes(x.container.name)))
          expect(w.config.store.records.kind, w.container.name).toBe("sqlite");
        const egressOf = (stage: string) =>
          find("NetworkPolicy").filter(
            (p) =>
              p.spec.podSelector.matchLabels?.["app.kubernetes.io/component"] === stage &&
              (p.spec.egress ?? []).some((r: Loose) => r.ports.some((x: Loose) => x.port === 5432)),
          );
        const [server] = find("StatefulSet", "postgresql");
        for (const stage of users) {
          const egress = egressOf(stage);
          expect(egress.length, stage).toBeGreaterThan(0);
          if (t === "overlays/prod") {
            expect(
              egress.some((p) => p.spec.egress.some((r: Loose) => r.to.some((x: Loose) => x.ipBlock))),
              stage,
            ).toBe(true);
            continue;
          }
          // The stage's policy selects the server's pods.
          const labels = server.spec.template.metadata.labels;
          expect(
            egress.some((p) =>
              p.spec.egress.some((r: Loose) =>
                r.to.some((x: Loose) =>
                  Object.entries(x.podSelector?.matchLabels ?? { none: "" }).every(
                    ([k, v]) => labels[k] === v,
                  ),
                ),
              ),
            ),
            stage,
          ).toBe(true);
        }
        if (t === "overlays/prod") {
          expect(server).toBeUndefined();
          return;
        }
        const labels = server.spec.template.metadata.labels;
        const [service] = find("Service", server.spec.serviceName);
        expect(Object.entries(service.spec.selector).every(([k, v]) => labels[k] === v)).toBe(true);
        expect(service.spec.ports[0].port).toBe(5432);
        // Its password from the Secret that also holds the URL, never a value here.
        const c = server.spec.template.spec.containers[0];
        const password = c.env.find((e: Loose) => e.name === "POSTGRES_PASSWORD");
        expect(secrets.has(password.valueFrom.secretKeyRef.name)).toBe(true);
        expect(server.spec.template.spec.securityContext.runAsNonRoot).toBe(true);
        expect(c.securityContext).toMatchObject({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
        });
        // Reached from the API's and match's pods only, and it reaches nothing.
        const own = find("NetworkPolicy").filter((p) =>
          Object.entries(p.spec.podSelector.matchLabels ?? {}).every(([k, v]) => labels[k] === v),
        );
        expect(own.flatMap((p) => p.spec.policyTypes).sort()).toEqual(["Egress", "Ingress"]);
        expect(own.flatMap((p) => p.spec.egress ?? [])).toEqual([]);
        expect(own.flatMap((p) => p.spec.ingress ?? [])).toEqual([
          {
            from: users.map((stage) => ({
              podSelector: {
                matchLabels: { "app.kubernetes.io/name": "vigil", "app.kubernetes.io/component": stage },
              },
            })),
            ports: [{ protocol: "TCP", port: 5432 }],
          },
        ]);
      });

      it("Qdrant: the official chart's values name the Service the config points at", () => {
        const values = parseYaml(
          readFileSync(path.join(k8sDir, `qdrant/values-${path.basename(t)}.yaml`), "utf8"),
        ) as Loose;
        const match = all.find((w) => w.container.name === "match")!;
        // One URL, the chart's Service (which spreads calls over the pods), not a list of nodes.
        const url = new URL(match.config.store.qdrantUrl as string);
        expect(match.config.store.kind).toBe("qdrant");
        expect(url.hostname).toBe(values.fullnameOverride);
        // The chart's http port; its pods carry app.kubernetes.io/name=<chart name> unless nameOverride is set.
        expect(url.port).toBe("6333");
        expect(values.nameOverride).toBeUndefined();
        expect(typeof values.apiKey, "a Qdrant API key is a Secret, never a value here").not.toBe("string");
        // Every workload that talks to Qdrant (match, the API) uses the store config and key the chart has.
        for (const w of all.filter((x) => STAGE_EGRESS_PORTS[x.container.name]!.includes(6333))) {
          expect(w.config.store.qdrantUrl, w.container.name).toBe(match.config.store.qdrantUrl);
          const keyEnv = (w.container.env ?? []).find((e: Loose) => e.name === "VIGIL_STORE__QDRANT_API_KEY");
          if (values.apiKey) {
            expect(keyEnv?.valueFrom?.secretKeyRef, w.container.name).toEqual(
              values.apiKey.valueFrom.secretKeyRef,
            );
          } else {
            expect(keyEnv, w.container.name).toBeUndefined();
          }
        }
      });

      it("Qdrant: collections are laid out for the chart's nodes: no more copies than nodes, two where there are several", () => {
        const values = parseYaml(
          readFileSync(path.join(k8sDir, `qdrant/values-${path.basename(t)}.yaml`), "utf8"),
        ) as Loose;
        const nodes = Number(values.replicaCount ?? 1);
        for (const w of all.filter((x) => x.config.store.kind === "qdrant")) {
          const layout = w.config.store.qdrantCollections;
          // More copies than nodes: Qdrant keeps fewer, silently (the store warns, but the promise is broken).
          expect(layout.replicationFactor, w.container.name).toBeLessThanOrEqual(nodes);
          if (nodes > 1) {
            expect(values.config?.cluster?.enabled, "several nodes are one cluster").toBe(true);
            // A node drained for an upgrade (the chart's PodDisruptionBudget allows one) must lose nothing.
            expect(layout.replicationFactor, w.container.name).toBeGreaterThanOrEqual(2);
            expect(layout.shardNumber, "a shard per node spreads the writes").toBeGreaterThanOrEqual(nodes);
          }
        }
      });

      it("Qdrant: the chart's image is pinned to a release the store accepts", () => {
        const values = parseYaml(
          readFileSync(path.join(k8sDir, `qdrant/values-${path.basename(t)}.yaml`), "utf8"),
        ) as Loose;
        // Not the chart's default (its appVersion), which may be older than the store needs.
        const tag = values.image?.tag;
        expect(tag, "image.tag").toMatch(/^v\d+\.\d+\.\d+$/);
        expect(meetsQdrantMinimum(parseQdrantVersion(tag)!), `${tag} < ${QDRANT_MIN_VERSION}`).toBe(true);
      });
    });
  }
});

describe("KafkaTopic resources are generated from the topic table", () => {
  it("the committed file is what `vigil deploy topics` makes from the table now", () => {
    const config = loadConfig({ file: baseConfigFile, env: {} });
    const regenerate = regenerateTopicsCommand(
      path.relative(root, baseConfigFile),
      path.relative(root, topicsFile),
      "vigil",
    );
    const fresh = kafkaTopicsYaml(config, { cluster: "vigil", regenerate });
    const message = `deploy/k8s/base/kafka-topics.yaml is stale; run: ${regenerate}`;
    expect(readFileSync(topicsFile, "utf8"), message).toBe(fresh);
  });

  it("a topic prefix gives valid resource names and the exact topic names", () => {
    const config = loadConfig({ env: { VIGIL_BUS__TOPIC_PREFIX: "Site_A." }, file: baseConfigFile });
    const docs = parseAllDocuments(kafkaTopicsYaml(config, { cluster: "c" })).map((d) => d.toJS() as Loose);
    expect(docs[0].spec.topicName).toBe("Site_A.vigil.frames");
    expect(docs[0].metadata.name).toBe("site-a.vigil.frames");
  });
});

describe("Dockerfile", () => {
  const dockerfile = path.join(root, "Dockerfile");

  it("passes hadolint", () => {
    requireTool(hadolint, "hadolint");
    expect(run(hadolint, ["--no-color", dockerfile])).toBe("");
  });

  it("runs as a non-root user, and its VIGIL_ variables are config keys", () => {
    const text = readFileSync(dockerfile, "utf8").replace(/\\\n/g, " ");
    const users = [...text.matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1]!);
    expect(users.length).toBeGreaterThan(0);
    for (const u of users) expect(u).toMatch(/^[1-9]\d*(:[1-9]\d*)?$/);
    const envs = [...text.matchAll(/^ENV\s+(.*)$/gm)].flatMap((m) =>
      [...m[1]!.matchAll(/(\w+)=/g)].map((x) => x[1]!),
    );
    const vigil = envs.filter((e) => e.startsWith("VIGIL_"));
    expect(vigil.length).toBeGreaterThan(0);
    for (const e of vigil) expect(envProblem(e)).toBeUndefined();
    // The pack the manifests' config asks for is the one the image pulls.
    const { pack } = loadConfig({ file: baseConfigFile, env: {} }).models;
    expect(text).toContain(`models pull --pack ${pack}`);
  });
});
