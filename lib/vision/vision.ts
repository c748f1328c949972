import type { Config } from "../config/index.ts";
import { modelCacheDir } from "../config/index.ts";
import { YuNetDetector } from "./detectors/yunet.ts";
import type { FaceDetector } from "./detectors/detection.ts";
import { FaceEmbedder } from "./embedder.ts";
import { FaceAnalyzer } from "./face-analyzer.ts";
import { ModelStore, ModelUnavailableError } from "./model-store.ts";
import { DEFAULT_PACK, FALLBACK_PACK, PACKS, modelSpec, packModels, type Pack } from "./registry.ts";
import { createSession } from "./runtime.ts";
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
 * unreachable), pulls what is missing and opens the sessions.
 */
export async function loadVision(
  config: Config,
  log: (line: string) => void = () => {},
  warn: (message: string) => void = (m) => process.stderr.write(m),
): Promise<Vision> {
  const store = modelStoreFor(config, log);
  const wanted = config.models.pack === "auto" ? DEFAULT_PACK : config.models.pack;
  let pack = PACKS[wanted]!;
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
  const session = async (id: string) => createSession(store.artifactPath(modelSpec(id)), config.models);
  const embedSpec = modelSpec(pack.embedder);
  const embedder = new FaceEmbedder(await session(pack.embedder), embedSpec, config.embed.flip);
  const detectSpec = modelSpec(pack.detector);
  const detector: FaceDetector =
    detectSpec.decoder === "yunet"
      ? new YuNetDetector(await session(pack.detector), detectSpec, config.detect)
      : new UltraFaceDetector(
          await session(pack.detector),
          detectSpec,
          await session(pack.landmarks!),
          modelSpec(pack.landmarks!),
          config.detect,
        );
  const analyzer = new FaceAnalyzer(detector, embedder, config.quality);
  return { pack, detector, embedder, analyzer, fallbackReason };
}
