import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { ConfigError, modelCacheDir, type Config } from "../../config/index.ts";
import { MODELS, modelSpec, type ModelSpec } from "./registry.ts";
import { declaredModel, packFor } from "./custom-packs.ts";
import { headExists, listHeads, loadHead, type HeadManifest } from "./heads.ts";
import {
  RECOGNISABILITY_TERMS,
  recognisabilityFeatures,
  type RecognisabilityModel,
} from "../pixels/quality.ts";
import type { QualityScores } from "../../contracts/index.ts";

/**
 * The match threshold for a model: the configured override, else the operating point calibrated for that model
 * (a target false-accept rate measured on impostor pairs), which the registry stores with the model id.
 */
export function thresholdFor(modelId: string, config: Config): number {
  if (config.match.threshold !== undefined) return config.match.threshold;
  // A trained head's own operating point, measured on identities it was not trained on, never its base's.
  const head = MODELS[modelId] ? undefined : headThreshold(modelCacheDir(config), modelId);
  if (head !== undefined) return head;
  const declared = MODELS[modelId] ? undefined : declaredModel(modelId, config);
  if (declared) {
    // A declared embedder's operating point was measured here, on this site's file, and kept beside the cache.
    const found = readPackCalibration(config, declared.spec);
    if (found.calibration) return found.calibration.threshold;
    throw new UncalibratedModelError(
      `${modelId} (declared pack ${declared.pack}) has no calibrated threshold${found.why ? ` (${found.why})` : ""}: ` +
        `run \`vigil eval lfw --calibrate --pack ${declared.pack} --images <LFW images> --pairs <pairs.txt>\` ` +
        `(or set match.threshold to an operating point measured elsewhere)`,
    );
  }
  const calibration = modelSpec(modelId).calibration;
  if (!calibration) throw new Error(`${modelId} has no calibrated threshold; set match.threshold`);
  return calibration.threshold;
}

/**
 * What the evaluations and benches need to know about the embedder a Vision runs (`vision.embedder.modelId`),
 * whichever kind it is: a built-in model (the registry's calibration), a declared pack's model (its calibration
 * file) or a trained head (`models.head`: its manifest's calibration, and its base model's spec, since the ONNX
 * model that runs is the base's). `modelSpec(modelId)` alone knows no head.
 */
export interface EmbedderInfo {
  /** The model id the vectors carry: the head's when a head runs. */
  modelId: string;
  /** The ONNX embedder that runs (the head's base for a head): its input, template, output size. */
  spec: ModelSpec;
  /** Set when `modelId` is a trained head. */
  head?: HeadManifest;
  /** The calibrated operating point on record, without `match.threshold`; undefined where none was measured yet. */
  calibration?: { threshold: number; far: number; source: string };
  /** Where `calibration` is kept, for output: "registry", "head manifest" or "pack calibration file". */
  calibratedIn: string;
  recognisability?: RecognisabilityModel;
  /** Why there is no recognisability model, for output; undefined when there is one. */
  noRecognisability?: string;
}

export function embedderInfo(modelId: string, config: Config): EmbedderInfo {
  const builtIn = MODELS[modelId];
  if (builtIn) {
    const c = builtIn.calibration;
    return {
      modelId,
      spec: builtIn,
      calibration: c && { threshold: c.threshold, far: c.far, source: c.source },
      calibratedIn: "registry",
      recognisability: c?.recognisability,
      noRecognisability: c?.recognisability
        ? undefined
        : `${modelId} has no recognisability calibration in the registry`,
    };
  }
  const cacheDir = modelCacheDir(config);
  if (headExists(cacheDir, modelId)) {
    const head = loadHead(cacheDir, modelId).manifest;
    return {
      modelId,
      spec: MODELS[head.base] ?? declaredModel(head.base, config)?.spec ?? modelSpec(head.base),
      head,
      calibration: head.calibration,
      calibratedIn: "head manifest",
      // The base's coefficients describe the base's scores, not the head's: none is better than a wrong one.
      ...ownRecognisability(modelId, config, `${modelId} is a trained head (on ${head.base})`),
    };
  }
  const declared = declaredModel(modelId, config);
  if (declared) {
    const found = readPackCalibration(config, declared.spec).calibration;
    return {
      modelId,
      spec: declared.spec,
      calibration: found && { threshold: found.threshold, far: found.far, source: found.source },
      calibratedIn: "pack calibration file",
      ...ownRecognisability(modelId, config, `${modelId} (declared pack ${declared.pack})`),
    };
  }
  // A model registered by a pack this config does not declare, or the registry's error naming the models it knows.
  return {
    modelId,
    spec: modelSpec(modelId),
    calibratedIn: "registry",
    noRecognisability: `${modelId} has no recognisability model`,
  };
}

/**
 * For a process that will match (the match service): the configured pack's embedder must have an operating point,
 * said at start rather than as a failure on every embedding it receives.
 */
export function assertPackCalibrated(config: Config): void {
  // With a head the vectors carry the head's id: its manifest must be in this process's model cache.
  if (config.models.head) loadHead(modelCacheDir(config), config.models.head);
  const modelId = config.models.head ?? packFor(config, config.models.pack).embedder;
  thresholdFor(modelId, config);
  // A fitted recognisability that cannot be read would silently trust every look: refused here, with why.
  const weights = MODELS[modelId] ? undefined : ownWeights(modelId, config);
  if (weights && existsSync(recognisabilityFile(config, weights.sha256))) {
    const { why } = readRecognisability(config, weights.sha256, modelId);
    if (why)
      throw new UncalibratedModelError(
        `${modelId}'s recognisability cannot be used (${why}): fit it again with \`vigil eval quality … --save\` or remove the file`,
      );
  }
}

/** Parsed head manifests by cache and id: the match stage asks for its threshold at every decision. */
const headThresholds = new Map<string, number>();

function headThreshold(cacheDir: string, modelId: string): number | undefined {
  const key = `${cacheDir}\0${modelId}`;
  let threshold = headThresholds.get(key);
  if (threshold === undefined && headExists(cacheDir, modelId)) {
    threshold = loadHead(cacheDir, modelId).manifest.calibration.threshold;
    headThresholds.set(key, threshold);
  }
  return threshold;
}

export class UncalibratedModelError extends Error {
  override name = "UncalibratedModelError";
}

/** What `vigil eval lfw --calibrate` measured for a declared embedder; one JSON file per embedder sha256. */
export interface PackCalibration {
  /** The embedder file's sha256 (the file name) and the model id its vectors carry (input, template included). */
  sha256: string;
  modelId: string;
  pack: string;
  /** Cosine similarity at which the impostor pairs' false-accept rate is `far`. */
  threshold: number;
  far: number;
  impostorPairs: number;
  flip: boolean;
  lfw: {
    images: string;
    pairs: string;
    folds: number;
    pairCount: number;
    imageCount: number;
    accuracy: number;
    std: number;
    noFace: number;
  };
  licence: string;
  measuredAt: string;
  source: string;
}

/** `models.calibrationDir`, by default beside the model cache (it describes the cached and declared models). */
export function calibrationDir(config: Config): string {
  return path.resolve(config.models.calibrationDir ?? path.join(modelCacheDir(config), "calibration"));
}

export const calibrationFile = (config: Config, sha256: string) =>
  path.join(calibrationDir(config), `${sha256}.json`);

/**
 * A calibration file, parsed once per modification (the match stage asks at every decision): its record, or why
 * it cannot be used. A file that fails is remembered too, so a broken one is not re-read for every face.
 */
const readCache = new Map<string, { mtimeMs: number; found: { record?: unknown; why?: string } }>();

function readCalibrationRecord<T extends { modelId: string }>(
  file: string,
  modelId: string,
  usable: (record: T) => string | undefined,
  otherModel: (recordModelId: string) => string,
): { record?: T; why?: string } {
  if (!existsSync(file)) return { why: `no ${file}` };
  const mtimeMs = statSync(file).mtimeMs;
  let found = readCache.get(file)?.mtimeMs === mtimeMs ? readCache.get(file)!.found : undefined;
  if (!found) {
    try {
      const record = JSON.parse(readFileSync(file, "utf8")) as T;
      const why = typeof record.modelId === "string" ? usable(record) : "no model id";
      found = why ? { why: `${file} has ${why}` } : { record };
    } catch (err) {
      found = { why: `${file} is unreadable: ${(err as Error).message}` };
    }
    readCache.set(file, { mtimeMs, found });
  }
  const record = found.record as T | undefined;
  if (record && record.modelId !== modelId) return { why: `${file} ${otherModel(record.modelId)}` };
  return { record, why: found.why };
}

/**
 * The calibration of a declared embedder, or why there is none usable: a file made for the same weights under
 * another model id (a different input scaling or template) does not describe these vectors.
 */
export function readPackCalibration(
  config: Config,
  spec: { id: string; files: Record<string, { sha256: string }> },
): { calibration?: PackCalibration; why?: string } {
  const { record, why } = readCalibrationRecord<PackCalibration>(
    calibrationFile(config, spec.files.model!.sha256),
    spec.id,
    (c) => (typeof c.threshold === "number" ? undefined : "no threshold"),
    (other) => `was measured for ${other}, made from the same file with another input or template`,
  );
  return { calibration: record, why };
}

/** Writes a calibration atomically (a reader never sees half a file); returns its path. */
export function writePackCalibration(config: Config, calibration: PackCalibration): string {
  const file = calibrationFile(config, calibration.sha256);
  writeAtomically(file, calibration);
  return file;
}

/**
 * The model's recognisability coefficients, when it has been calibrated for them: the registry's for a built-in
 * model; for a declared embedder or a trained head (given the config that declares it), what
 * `vigil eval quality --save` fitted here. Unknown or uncalibrated ids: none, and every look counts fully.
 */
export function recognisabilityFor(modelId: string, config?: Config): RecognisabilityModel | undefined {
  const builtIn = MODELS[modelId];
  if (builtIn || !config) return builtIn?.calibration?.recognisability;
  const weights = ownWeights(modelId, config);
  return weights
    ? readRecognisability(config, weights.sha256, modelId).calibration?.recognisability
    : undefined;
}

/** What `vigil eval quality --save` fitted for an embedder the registry does not describe. */
export interface RecognisabilityCalibration {
  modelId: string;
  /** The weights the vectors come from: a declared embedder's file, or a trained head's weights. */
  sha256: string;
  recognisability: RecognisabilityModel;
  /** The operating point "recognised" was measured at (the model's calibrated threshold). */
  threshold: number;
  samples: number;
  /** Fitted on one half of the identities, ranked on the other (and back). */
  heldOutAuc: number[];
  images: string;
  measuredAt: string;
}

/**
 * The file that identifies an embedder's vectors besides the registry: a trained head's weights (its manifest's
 * sha256, read without loading the weights) or a declared embedder's model file.
 */
function ownWeights(modelId: string, config: Config): { sha256: string } | undefined {
  const cacheDir = modelCacheDir(config);
  const key = `${cacheDir}\0${modelId}`;
  // A head's weights never change under its id (vigil train refuses an existing one): read its manifest once.
  let head = headWeights.get(key);
  if (head === undefined && headExists(cacheDir, modelId)) {
    head = listHeads(cacheDir).find((h) => h.id === modelId)?.weights.sha256;
    if (head) headWeights.set(key, head);
  }
  if (head) return { sha256: head };
  const declared = declaredModel(modelId, config);
  return declared && { sha256: declared.spec.files.model!.sha256 };
}

const headWeights = new Map<string, string>();

/**
 * Where `vigil eval quality --save` would keep coefficients for this model, checked before the evaluation runs:
 * a built-in model's live in the registry, reviewed with the code, and are not overridden here.
 */
export function recognisabilityTarget(modelId: string, config: Config): string {
  if (MODELS[modelId])
    throw new ConfigError(
      `${modelId} is built in: its recognisability is in the registry (--refit prints what this data gives)`,
    );
  const weights = ownWeights(modelId, config);
  if (!weights)
    throw new ConfigError(
      `${modelId} is neither a trained head in the model cache nor a declared embedder in models.packs`,
    );
  return recognisabilityFile(config, weights.sha256);
}

export const recognisabilityFile = (config: Config, sha256: string) =>
  path.join(calibrationDir(config), `${sha256}.recognisability.json`);

function readRecognisability(
  config: Config,
  sha256: string,
  modelId: string,
): { calibration?: RecognisabilityCalibration; why?: string } {
  const { record, why } = readCalibrationRecord<RecognisabilityCalibration>(
    recognisabilityFile(config, sha256),
    modelId,
    (c) => {
      const r = c.recognisability as Partial<RecognisabilityModel> | undefined;
      return r && [r.intercept, ...RECOGNISABILITY_TERMS.map((t) => r[t])].every(Number.isFinite)
        ? undefined
        : "no recognisability coefficients";
    },
    (other) => `was fitted for ${other}, made from the same weights another way`,
  );
  return { calibration: record, why };
}

/** For `embedderInfo`: the fitted coefficients of a head or declared embedder, or how to fit them. */
function ownRecognisability(
  modelId: string,
  config: Config,
  label: string,
): Pick<EmbedderInfo, "recognisability" | "noRecognisability"> {
  const weights = ownWeights(modelId, config);
  const found = weights ? readRecognisability(config, weights.sha256, modelId) : { why: "no weights found" };
  if (found.calibration) return { recognisability: found.calibration.recognisability };
  return {
    noRecognisability:
      `${label} has no recognisability model (${found.why}): fit one with ` +
      "`vigil eval quality --images <LFW images> --pairs <pairs.txt> --save`",
  };
}

/**
 * `vigil eval quality --save`: keeps what was fitted for the running embedder where `recognisabilityFor` finds it.
 * A built-in model's coefficients live in the registry, reviewed with the code, and are not overridden here.
 */
export function saveRecognisability(
  config: Config,
  fitted: Omit<RecognisabilityCalibration, "sha256" | "measuredAt">,
): string {
  const file = recognisabilityTarget(fitted.modelId, config);
  const record: RecognisabilityCalibration = {
    ...fitted,
    sha256: ownWeights(fitted.modelId, config)!.sha256,
    measuredAt: new Date().toISOString(),
  };
  writeAtomically(file, record);
  return file;
}

function writeAtomically(file: string, value: unknown): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const partial = `${file}.${process.pid}.partial`;
  writeFileSync(partial, JSON.stringify(value, null, 2) + "\n");
  renameSync(partial, file);
}

/**
 * Least trust a track needs to alert or be labelled: `match.minTrust`, else the model's calibrated value. A
 * model without a recognisability calibration trusts every look fully, so its value does not matter there.
 */
export function minTrustFor(modelId: string, config?: Pick<Config, "match">): number {
  return config?.match.minTrust ?? MODELS[modelId]?.calibration?.minTrust ?? DEFAULT_MIN_TRUST;
}

/** A look that would be recognised less than 1 time in 20 is no evidence of who it shows. */
export const DEFAULT_MIN_TRUST = 0.05;

export interface RecognisabilitySample {
  quality: QualityScores;
  /** Whether the face matched its own reference at the operating point. */
  recognised: boolean;
}

/**
 * Logistic regression of "recognised at the operating point" on the quality features (batch gradient descent
 * on standardised features, light L2), returned in raw feature units for the registry. Small and convex: the
 * same data always gives the same coefficients.
 */
export function fitRecognisability(
  samples: RecognisabilitySample[],
  iterations = 4000,
): RecognisabilityModel {
  if (samples.length === 0) throw new Error("no samples to fit recognisability on");
  const xs = samples.map((s) => recognisabilityFeatures(s.quality));
  const ys = samples.map((s) => (s.recognised ? 1 : 0));
  const d = xs[0]!.length;
  const mean = Array.from({ length: d }, (_, j) => xs.reduce((s, x) => s + x[j]!, 0) / xs.length);
  const sd = Array.from({ length: d }, (_, j) =>
    Math.max(1e-9, Math.sqrt(xs.reduce((s, x) => s + (x[j]! - mean[j]!) ** 2, 0) / xs.length)),
  );
  const zs = xs.map((x) => x.map((v, j) => (v - mean[j]!) / sd[j]!));
  const w = new Array<number>(d + 1).fill(0);
  for (let it = 0; it < iterations; it++) {
    const grad = new Array<number>(d + 1).fill(0);
    zs.forEach((z, i) => {
      let a = w[0]!;
      for (let j = 0; j < d; j++) a += w[j + 1]! * z[j]!;
      const e = 1 / (1 + Math.exp(-a)) - ys[i]!;
      grad[0]! += e;
      for (let j = 0; j < d; j++) grad[j + 1]! += e * z[j]!;
    });
    for (let j = 0; j <= d; j++) w[j]! -= 0.5 * (grad[j]! / zs.length + (j > 0 ? 1e-3 * w[j]! : 0));
  }
  const model = { intercept: w[0]! } as RecognisabilityModel;
  RECOGNISABILITY_TERMS.forEach((term, j) => {
    model[term] = w[j + 1]! / sd[j]!;
    model.intercept -= (w[j + 1]! * mean[j]!) / sd[j]!;
  });
  return model;
}
