import { readFileSync } from "node:fs";
import type { Config } from "../../config/index.ts";
import { modelCacheDir } from "../../config/index.ts";
import { YuNetDetector } from "./detectors/yunet.ts";
import type { FaceDetector } from "./detectors/detection.ts";
import { FaceEmbedder } from "./embedder.ts";
import { FaceAnalyzer, type AlignmentTarget } from "./face-analyzer.ts";
import { ModelStore, ModelUnavailableError } from "../models/model-store.ts";
import { DEFAULT_PACK, FALLBACK_PACK, PACKS, modelSpec, packModels, type Pack } from "../models/registry.ts";
import { packFor } from "../models/custom-packs.ts";
import { createSession, effectiveProvider } from "./runtime.ts";
import { BatchedYuNet } from "./batched-yunet.ts";
import { loadHead } from "../models/heads.ts";
import { withYuv420Input } from "../models/frame-input.ts";
import { UltraFaceDetector } from "./detectors/ultraface.ts";

export interface Vision {
  pack: Pack;
  detector: FaceDetector;
  embedder: FaceEmbedder;
  analyzer: FaceAnalyzer;
  /** Set when the configured pack could not be had and the npm-only pack stands in. */
  fallbackReason?: string;
}

export function modelStoreFor(config: Config, log: (line: string) => void): ModelStore {
  return new ModelStore({
    cacheDir: modelCacheDir(config),
    mirror: config.models.mirror,
    sources: config.models.sources,
    log,
  });
}

/** Said once per process: a silent fallback would hide a real drop in accuracy. */
let fallbackAnnounced = false;

/**
 * Resolves the pack (`auto` = default, falling back to the npm-only pack when the default's sources are
 * unreachable) and pulls what is missing.
 */
async function resolvePack(
  config: Config,
  log: (line: string) => void,
  warn: (message: string) => void,
): Promise<{ store: ModelStore; pack: Pack; fallbackReason?: string }> {
  const store = modelStoreFor(config, log);
  // A built-in pack, or one declared in models.packs (its files are hashed against their declaration below).
  let pack = packFor(config, config.models.pack);
  if (pack.declared) log(`pack ${pack.id} (declared in models.packs); licence: ${pack.licence}`);
  let fallbackReason: string | undefined;
  try {
    for (const spec of packModels(pack)) await store.ensure(spec);
  } catch (err) {
    if (!(err instanceof ModelUnavailableError) || config.models.pack !== "auto") throw err;
    fallbackReason = err.message;
    pack = PACKS[FALLBACK_PACK]!;
    if (!fallbackAnnounced) {
      fallbackAnnounced = true;
      warn(
        `\n*** vigil: the default model pack (${DEFAULT_PACK}) is unavailable; using the npm-only pack ` +
          `${FALLBACK_PACK} instead (lower accuracy; weights' licence undocumented). Reason:\n${err.message}\n` +
          `*** Set models.mirror / VIGIL_MODEL_MIRROR to a directory holding the default pack to fix this.\n\n`,
      );
    }
    for (const spec of packModels(pack)) await store.ensure(spec);
  }
  return { store, pack, fallbackReason };
}

const session = (store: ModelStore, config: Config, id: string) =>
  createSession(store.artifactPath(modelSpec(id)), config.models);

async function openEmbedder(store: ModelStore, config: Config, pack: Pack): Promise<FaceEmbedder> {
  const spec = modelSpec(pack.embedder);
  const embedSession = await session(store, config, pack.embedder);
  // After the session: `auto` has chosen its provider by then.
  const onCpu = effectiveProvider(config.models) === "cpu";
  return new FaceEmbedder(
    embedSession,
    spec,
    config.embed.flip,
    // A trained head (vigil train) after the base embedder: plain arithmetic, no training code at run time.
    config.models.head ? loadHead(modelCacheDir(config), config.models.head) : undefined,
    onCpu ? Math.min(spec.maxBatch, config.models.cpuEmbedBatch) : spec.maxBatch,
  );
}

async function openDetector(store: ModelStore, config: Config, pack: Pack): Promise<FaceDetector> {
  const detectSpec = modelSpec(pack.detector);
  return detectSpec.decoder === "yunet"
    ? new YuNetDetector(
        await session(store, config, pack.detector),
        detectSpec,
        config.detect,
        config.detect.frameInput
          ? (geometry) =>
              createSession(
                withYuv420Input(readFileSync(store.artifactPath(detectSpec)), detectSpec.input, geometry),
                config.models,
                { detectorGrid: { width: geometry.padWidth, height: geometry.padHeight } },
              )
          : undefined,
      )
    : new UltraFaceDetector(
        await session(store, config, pack.detector),
        detectSpec,
        await session(store, config, pack.landmarks!),
        modelSpec(pack.landmarks!),
        config.detect,
      );
}

/**
 * Whether detect-align batches detection (`models.gpu.batchedDetect`): `auto` on a GPU provider only. Asked after
 * a session was made, so that `auto`'s provider has resolved.
 */
export function batchedDetectWanted(models: Config["models"]): boolean {
  const mode = models.gpu.batchedDetect;
  return mode === "on" || (mode === "auto" && effectiveProvider(models) !== "cpu");
}

/** The batch detector when batching is wanted and the pack's detector can batch (YuNet's decoder). */
async function openBatchedDetector(
  store: ModelStore,
  config: Config,
  pack: Pack,
  warn: (message: string) => void,
): Promise<BatchedYuNet | undefined> {
  if (!batchedDetectWanted(config.models)) return undefined;
  const spec = modelSpec(pack.detector);
  if (spec.decoder !== "yunet") {
    if (config.models.gpu.batchedDetect === "on")
      warn(
        `vigil: models.gpu.batchedDetect is "on" but ${spec.id} cannot batch (YuNet only); one frame a run\n`,
      );
    return undefined;
  }
  const { detectBatch, detectWidth, detectHeight } = config.models.gpu;
  return BatchedYuNet.open(
    store.artifactPath(spec),
    spec,
    config.models,
    config.detect,
    {
      width: detectWidth,
      height: detectHeight,
      maxBatch: detectBatch,
      maxSide: config.detect.maxSide,
      frameInput: config.detect.frameInput,
    },
    { dataDir: config.dataDir },
  );
}

/** Detector (and batch detector, when wanted) → FaceAnalyzer: the same in process and in a worker thread. */
async function openAnalyzer(
  store: ModelStore,
  config: Config,
  pack: Pack,
  warn: (message: string) => void,
): Promise<FaceAnalyzer> {
  const detector = await openDetector(store, config, pack);
  const batched = await openBatchedDetector(store, config, pack, warn);
  return new FaceAnalyzer(
    detector,
    alignmentTarget(pack),
    config.quality,
    batched && { detector: batched, maxSide: config.detect.maxSide },
  );
}

/** The embedder's crop size and landmark template, read from the registry (no session needed). */
function alignmentTarget(pack: Pack): AlignmentTarget {
  const spec = modelSpec(pack.embedder);
  return { width: spec.input.width!, height: spec.input.height!, template: spec.template! };
}

export async function loadVision(
  config: Config,
  log: (line: string) => void = () => {},
  warn: (message: string) => void = (m) => process.stderr.write(m),
): Promise<Vision> {
  const { store, pack, fallbackReason } = await resolvePack(config, log, warn);
  const embedder = await openEmbedder(store, config, pack);
  const analyzer = await openAnalyzer(store, config, pack, warn);
  return { pack, detector: analyzer.detector, embedder, analyzer, fallbackReason };
}

/**
 * Only the half a worker thread needs: detect-align workers open no embedding session, embed workers no
 * detector (each session costs tens of MB).
 */
/** The pack's own models without a configured head: training, its data and its protocols never run a head. */
export function loadBaseVision(config: Config, log?: (line: string) => void): Promise<Vision> {
  return loadVision({ ...config, models: { ...config.models, head: undefined } }, log);
}

export async function loadVisionPart(config: Config, part: "analyzer"): Promise<FaceAnalyzer>;
export async function loadVisionPart(config: Config, part: "embedder"): Promise<FaceEmbedder>;
export async function loadVisionPart(
  config: Config,
  part: "analyzer" | "embedder",
): Promise<FaceAnalyzer | FaceEmbedder> {
  const { store, pack } = await resolvePack(
    config,
    () => {},
    () => {},
  );
  if (part === "embedder") return openEmbedder(store, config, pack);
  return openAnalyzer(store, config, pack, () => {});
}
