import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ConfigError, type Config } from "../config/index.ts";
import { loadVision, type Vision } from "../vision/inference/vision.ts";
import { packFor } from "../vision/models/custom-packs.ts";
import { declaredModel } from "../vision/models/custom-packs.ts";
import { writePackCalibration, type PackCalibration } from "../vision/models/calibration.ts";
import type { BgrImage } from "../vision/pixels/image.ts";
import { evaluateLfw, type LfwReport } from "./lfw.ts";
import { parseLfwPairs } from "./lfw-pairs.ts";

/** The false-accept rates evaluateLfw measures over every cross-identity pair; one is the operating point. */
export const CALIBRATION_FARS = [1e-3, 1e-4, 1e-5] as const;

/** Impostor pairs above the threshold below which a FAR is a guess rather than a measurement. */
const MIN_FALSE_ACCEPTS = 10;

export interface CalibrateOptions {
  /** LFW layout: `<Name>/<Name>_<NNNN>.jpg`, and the standard pairs.txt. */
  images: string;
  pairs: string;
  /** Only the first n folds of pairs.txt (at least 2: each fold's accuracy uses a threshold from the others). */
  folds?: number;
  /** The target false-accept rate of the operating point (default 1e-4, as for the built-in models). */
  far?: number;
  onProgress?: (phase: string, total: number) => { tick(): void; done(): void };
  log?: (line: string) => void;
}

export interface CalibrateResult {
  calibration: PackCalibration;
  file: string;
  report: LfwReport;
}

/**
 * `vigil eval lfw --calibrate`: runs the LFW protocol with the configured declared pack, takes the cosine
 * threshold at the target FAR over every cross-identity pair of the images, and writes it beside the model cache
 * under the embedder's sha256, where `thresholdFor` reads it. Until then the pack may be evaluated but not
 * matched with: a threshold borrowed from another model would mean an unknown false-alert rate.
 */
export async function calibrateModelPack(
  config: Config,
  options: CalibrateOptions,
): Promise<CalibrateResult> {
  const far = options.far ?? 1e-4;
  if (!CALIBRATION_FARS.includes(far as (typeof CALIBRATION_FARS)[number])) {
    throw new ConfigError(`--far ${far}: the calibration measures FAR ${CALIBRATION_FARS.join(", ")}`);
  }
  const pack = packFor(config, config.models.pack);
  const declared = declaredModel(pack.embedder, config);
  if (!declared) {
    throw new ConfigError(
      `pack ${pack.id}'s embedder ${pack.embedder} is built in and calibrated in the registry; ` +
        `--calibrate is for an embedder declared in models.packs (--pack <name>)`,
    );
  }
  const vision = await loadVision(config, options.log);
  await probeEmbedder(vision, pack.id);

  const { file: pairsFile, folds, cleanup } = pairsSubset(options.pairs, options.folds);
  let report: LfwReport;
  try {
    report = await evaluateLfw(vision, options.images, pairsFile, options.onProgress, config.embed.flip);
  } finally {
    cleanup();
  }
  const point = report.calibration.find((c) => c.far === far)!;
  const falseAccepts = Math.floor(far * point.impostorPairs);
  if (falseAccepts < MIN_FALSE_ACCEPTS) {
    throw new ConfigError(
      `FAR ${far} over ${point.impostorPairs} impostor pairs allows ${falseAccepts} false accepts; at least ` +
        `${MIN_FALSE_ACCEPTS} are needed to measure it: use more folds or a higher --far`,
    );
  }
  const calibration: PackCalibration = {
    sha256: declared.spec.files.model!.sha256,
    modelId: declared.spec.id,
    pack: pack.id,
    threshold: Number(point.threshold.toFixed(4)),
    far,
    impostorPairs: point.impostorPairs,
    flip: report.flip,
    lfw: {
      images: path.resolve(options.images),
      pairs: path.resolve(options.pairs),
      folds,
      pairCount: report.pairs,
      imageCount: report.images,
      accuracy: report.accuracy,
      std: report.std,
      noFace: report.noFace.count,
    },
    licence: declared.licence,
    measuredAt: new Date().toISOString(),
    source:
      `vigil eval lfw --calibrate: cosine threshold at FAR ${far} over ${point.impostorPairs} cross-identity ` +
      `pairs of ${report.images} LFW images (folds 1-${folds}, flip ${report.flip ? "on" : "off"}); ` +
      `LFW accuracy ${(report.accuracy * 100).toFixed(2)} % ± ${(report.std * 100).toFixed(2)}`,
  };
  const file = writePackCalibration(config, calibration);
  return { calibration, file, report };
}

/**
 * One blank crop (two with batching) through the declared embedder before minutes of LFW: a wrong outputDim,
 * input size or batch declaration is named here, with what to change, instead of failing mid-run.
 */
async function probeEmbedder(vision: Vision, packId: string): Promise<void> {
  const { embedder } = vision;
  const crop = (): BgrImage => ({
    width: embedder.width,
    height: embedder.height,
    data: new Uint8Array(embedder.width * embedder.height * 3).fill(128),
  });
  try {
    const vectors = await embedder.embed([crop(), crop()]);
    if (vectors.length !== 2 || vectors.some((v) => v.length !== embedder.dim)) {
      throw new Error(`expected 2 vectors of ${embedder.dim} values`);
    }
  } catch (err) {
    throw new ConfigError(
      `models.packs.${packId}.embedder does not run as declared (input ${embedder.width}×${embedder.height}, ` +
        `outputDim ${embedder.dim}): ${(err as Error).message}. Check input, outputDim, and maxBatch ` +
        `(1 unless the graph's batch dimension is dynamic, or add fixes: ["dynamic-batch"])`,
    );
  }
}

/** The first `folds` folds of pairs.txt as a pairs file of their own (the header says how many). */
function pairsSubset(
  pairsFile: string,
  folds: number | undefined,
): { file: string; folds: number; cleanup: () => void } {
  const parsed = parseLfwPairs(pairsFile);
  if (folds === undefined || folds === parsed.folds) {
    if (parsed.folds < 2)
      throw new ConfigError(`${pairsFile}: at least 2 folds are needed, it has ${parsed.folds}`);
    return { file: pairsFile, folds: parsed.folds, cleanup: () => {} };
  }
  if (!Number.isInteger(folds) || folds < 2 || folds > parsed.folds) {
    throw new ConfigError(`--folds ${folds}: between 2 and the ${parsed.folds} folds of ${pairsFile}`);
  }
  const lines = readFileSync(pairsFile, "utf8")
    .split(/\r?\n/)
    .filter((l) => l.trim().length > 0);
  const keep = lines.slice(1, 1 + folds * 2 * parsed.perClass);
  const dir = mkdtempSync(path.join(tmpdir(), "vigil-pairs-"));
  const file = path.join(dir, "pairs.txt");
  writeFileSync(file, [`${folds}\t${parsed.perClass}`, ...keep].join("\n") + "\n");
  return { file, folds, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
