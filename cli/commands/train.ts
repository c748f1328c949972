import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { modelCacheDir, type Config } from "../../lib/config/index.ts";
import { thresholdAtFar } from "../../lib/eval/collections.ts";
import { EmbeddingCache } from "../../lib/eval/embedding-cache.ts";
import { writeChartPng } from "../../lib/eval/plot.ts";
import { progress } from "../../lib/telemetry/progress.ts";
import { configuredStoreData, folderData, type TrainingData } from "../../lib/train/dataset.ts";
import { applyHead, checkHeadId, headExists, type Head } from "../../lib/vision/models/heads.ts";
import { saveHead } from "../../lib/vision/models/heads.ts";
import { evaluateLfwHeads, type LfwHeadsReport } from "../../lib/train/lfw-heads.ts";
import { defaultParams, LOSSES, type LossName } from "../../lib/train/losses.ts";
import {
  DEFAULT_TRAIN,
  trainHead,
  trainingBackend,
  type EpochRecord,
  type TrainOptions,
} from "../../lib/train/trainer.ts";
import { verificationScores } from "../../lib/train/validation.ts";
import { loadBaseVision } from "../../lib/vision/inference/vision.ts";
import { logToStderr, UsageError } from "../context.ts";

export interface HeadCliOptions {
  loss?: string;
  s?: number;
  m?: number;
  dim?: number;
  hidden?: number;
  epochs?: number;
  batch?: number;
  lr?: number;
  seed?: number;
}

/** Training options from the command line, checked: a bad value is a usage error naming it. */
export function trainOptionsFrom(opts: HeadCliOptions): TrainOptions {
  const loss = (opts.loss ?? "am-softmax") as LossName;
  if (!LOSSES.includes(loss))
    throw new UsageError(`--loss must be one of ${LOSSES.join(", ")}; got ${opts.loss}`);
  const defaults = defaultParams(loss);
  const positive = (name: string, v: number | undefined, fallback: number, integer = false) => {
    const value = v ?? fallback;
    if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value)))
      throw new UsageError(`--${name} must be a positive ${integer ? "integer" : "number"}; got ${v}`);
    return value;
  };
  const m = opts.m ?? defaults.m;
  if (!Number.isFinite(m) || m < 0) throw new UsageError(`--m must be a number ≥ 0; got ${opts.m}`);
  if (loss === "sphereface" && (!Number.isInteger(m) || m < 1))
    throw new UsageError(`SphereFace's --m is an integer angle multiplier (e.g. 4); got ${m}`);
  const hidden = opts.hidden ?? 0;
  if (!Number.isInteger(hidden) || hidden < 0)
    throw new UsageError(`--hidden must be an integer ≥ 0; got ${hidden}`);
  return {
    ...DEFAULT_TRAIN,
    loss,
    params: { ...defaults, s: positive("s", opts.s, defaults.s), m },
    dim: positive("dim", opts.dim, DEFAULT_TRAIN.dim, true),
    hidden,
    epochs: positive("epochs", opts.epochs, DEFAULT_TRAIN.epochs, true),
    batch: positive("batch", opts.batch, DEFAULT_TRAIN.batch, true),
    lr: positive("lr", opts.lr, DEFAULT_TRAIN.lr),
    seed: opts.seed ?? DEFAULT_TRAIN.seed,
  };
}

const epochLine = (r: EpochRecord, total: number) =>
  `epoch ${String(r.epoch).padStart(String(total).length)}/${total}: loss ${r.loss.toFixed(4)}, held-out TAR@FAR=1e-3 ${(r.valTar * 100).toFixed(2)}%, accuracy ${(r.valAccuracy * 100).toFixed(2)}% (${r.seconds.toFixed(1)} s)`;

export interface TrainCommandOptions extends HeadCliOptions {
  data?: string;
  fromStore?: boolean;
  out?: string;
  far?: number;
  /** A second folder of identities whose impostor pairs the threshold must also hold on. */
  calibrate?: string;
  json?: boolean;
}

/** `vigil train`: a head on base embeddings, calibrated on held-out identities, registered under its own id. */
export async function trainCommand(config: Config, opts: TrainCommandOptions) {
  if (!opts.data === !opts.fromStore) throw new UsageError("give either --data <dir> or --from-store");
  if (opts.data && !existsSync(opts.data))
    throw new UsageError(`training data folder ${opts.data} does not exist`);
  if (opts.calibrate && !existsSync(opts.calibrate))
    throw new UsageError(`calibration folder ${opts.calibrate} does not exist`);
  const train = trainOptionsFrom(opts);
  const far = opts.far ?? 1e-4;
  if (!(far > 0 && far < 1)) throw new UsageError(`--far must be between 0 and 1; got ${far}`);
  const cacheDir = modelCacheDir(config);
  const vision = await loadBaseVision(config, logToStderr);
  const base = vision.embedder.modelId;
  const id = checkHeadId(opts.out ?? `${base}+${train.loss}-${new Date().toISOString().slice(0, 10)}`);
  if (headExists(cacheDir, id))
    throw new UsageError(`a head named ${id} already exists; choose another --out`);
  const backend = await trainingBackend();
  logToStderr(`training backend: ${backend}`);

  const data: TrainingData = opts.data
    ? await folderData(
        vision,
        opts.data,
        EmbeddingCache.inDataDir(config.dataDir, base, config.embed.flip),
        (phase, total) => progress(phase, total),
      )
    : await configuredStoreData(config, base);
  for (const s of data.skipped.slice(0, 20)) logToStderr(`left out: ${s}`);
  if (data.skipped.length > 20) logToStderr(`… and ${data.skipped.length - 20} more left out`);
  logToStderr(`${data.identities} identities, ${data.images} images (${data.source})`);

  const steps = progress("training", train.epochs);
  const result = await trainHead(data.samples, train, (r, total) => {
    steps.tick();
    logToStderr(epochLine(r, total));
  });
  steps.done();

  // The threshold is measured, not guessed: at the target FAR among impostor pairs of identities the head was not
  // trained on — the held-out ones, and (--calibrate) a second collection — taking the highest, so that none of
  // them exceeds the rate (as `vigil eval threshold` does for the base model). A set too small to show the rate
  // contributes the normal-tail estimate of its impostor scores, and says so.
  const head = { manifest: result.head, params: result.params } as Head;
  const collections: { name: string; impostors: Float32Array; threshold: number }[] = [];
  const measure = (name: string, samples: { identity: string; vector: Float32Array }[]) => {
    const scores = verificationScores(
      applyHead(
        head,
        samples.map((s) => s.vector),
      ),
      samples.map((s) => s.identity),
    );
    collections.push({ name, impostors: scores.impostors, threshold: thresholdAtFar(scores.impostors, far) });
  };
  measure(
    `${result.split.valIdentities.length} held-out identities (${result.split.valImages} images)`,
    result.validation,
  );
  if (opts.calibrate) {
    const extra = await folderData(
      vision,
      opts.calibrate,
      EmbeddingCache.inDataDir(config.dataDir, base, config.embed.flip),
      (phase, total) => progress(phase, total),
    );
    // Identities the head was trained on are left out: their impostor scores were pushed apart in training.
    const trained = new Set(result.split.trainIdentities);
    const unseen = extra.samples.filter((s) => !trained.has(s.identity));
    measure(
      `${new Set(unseen.map((s) => s.identity)).size} identities of ${path.resolve(opts.calibrate)} (${unseen.length} images)`,
      unseen,
    );
  }
  const threshold = Math.max(...collections.map((c) => c.threshold));
  const calibrationSource =
    `vigil train: the highest threshold at FAR ${far} over ` +
    collections
      .map(
        (c) =>
          `${c.impostors.length} impostor pairs of ${c.name} → ${c.threshold.toFixed(4)}` +
          (c.impostors.length >= 10 / far
            ? ""
            : " (normal-tail estimate: too few pairs to measure the rate)"),
      )
      .join("; ");
  if (collections.every((c) => c.impostors.length < 10 / far))
    logToStderr(
      `warning: no calibration set has the ${Math.ceil(10 / far)} impostor pairs needed to measure FAR ${far}; ` +
        `the threshold is a normal-tail estimate. Give --calibrate <folder of identities> (e.g. LFW) for a measured one.`,
    );
  const manifest = saveHead(cacheDir, {
    manifest: {
      ...result.head,
      id,
      base,
      flip: config.embed.flip,
      calibration: {
        threshold,
        far,
        source: calibrationSource,
      },
      data: {
        source: data.source,
        identities: data.identities,
        images: data.images,
        trainIdentities: result.split.trainIdentities.length,
        valIdentities: result.split.valIdentities.length,
      },
      trainedAt: new Date().toISOString(),
    },
    params: result.params,
  });

  const outDir = path.resolve(config.dataDir, "train", id);
  mkdirSync(outDir, { recursive: true });
  const plot = path.join(outDir, "curve.png");
  await writeTrainingCurve(result.history, result.baseVal, plot);
  const summary = {
    id,
    base,
    loss: train.loss,
    backend,
    hyperParameters: manifest.hyperParameters,
    data: { ...manifest.data, skipped: data.skipped.length },
    split: {
      trainIdentities: result.split.trainIdentities.length,
      trainImages: result.split.trainImages,
      valIdentities: result.split.valIdentities.length,
      valImages: result.split.valImages,
    },
    history: result.history,
    bestEpoch: result.bestEpoch,
    heldOutVerification: {
      head: {
        accuracy: result.history[result.bestEpoch - 1]?.valAccuracy,
        tarAtFar1e3: result.history[result.bestEpoch - 1]?.valTar,
      },
      base: { accuracy: result.baseVal.accuracy, tarAtFar1e3: result.baseVal.tar },
    },
    calibration: manifest.calibration,
    weights: manifest.weights,
    plot,
  };
  writeFileSync(path.join(outDir, "summary.json"), JSON.stringify(summary, null, 2) + "\n");
  if (opts.json) {
    console.log(JSON.stringify(summary));
    return summary;
  }
  console.log(
    `head ${id}: ${base} + ${train.loss} head (${manifest.layers.map((l) => `${l.in}→${l.out}`).join(", ")})`,
  );
  console.log(
    `best epoch ${result.bestEpoch} of ${result.history.length}: held-out TAR@FAR=1e-3 ${pct(summary.heldOutVerification.head.tarAtFar1e3 ?? 0)}, accuracy ${pct(summary.heldOutVerification.head.accuracy ?? 0)} (base model ${pct(result.baseVal.tar)}, ${pct(result.baseVal.accuracy)})`,
  );
  console.log(`threshold ${threshold.toFixed(4)} at FAR ${far} (${manifest.calibration.source})`);
  console.log(`summary ${path.join(outDir, "summary.json")}, curve ${plot}`);
  console.log(`use it: set models.head to "${id}" in the config (or VIGIL_MODELS__HEAD=${id})`);
  return summary;
}

const pct = (v: number) => `${(v * 100).toFixed(2)}%`;

async function writeTrainingCurve(
  history: EpochRecord[],
  base: { accuracy: number; tar: number },
  file: string,
) {
  const x = history.map((h) => h.epoch);
  const epochLabel = (v: number) => String(Math.round(v));
  await writeChartPng(
    // The legend is drawn from the first panel's series: the panel with both goes first.
    [
      {
        title: "held-out identities: TAR at FAR 1e-3",
        xLabel: "epoch",
        yLabel: "TAR",
        x,
        series: [
          { name: "head", y: history.map((h) => h.valTar) },
          { name: "base model", y: history.map(() => base.tar) },
        ],
        format: { x: epochLabel },
      },
      {
        title: "training loss",
        xLabel: "epoch",
        yLabel: "loss",
        x,
        series: [{ name: "head", y: history.map((h) => h.loss) }],
        format: { x: epochLabel, y: (v) => v.toPrecision(3) },
      },
    ],
    file,
  );
}

/** `vigil eval lfw --train-head`: the disjoint-fold protocol for one loss, base model beside it. */
export async function evalLfwHeadsCommand(
  config: Config,
  opts: HeadCliOptions & { images: string; pairs: string; json?: boolean; out?: string },
): Promise<LfwHeadsReport> {
  const train = trainOptionsFrom(opts);
  const vision = await loadBaseVision(config, logToStderr);
  const backend = await trainingBackend();
  logToStderr(`training backend: ${backend}`);
  const report = await evaluateLfwHeads(vision, opts.images, opts.pairs, {
    train,
    backend,
    flip: config.embed.flip,
    cache: EmbeddingCache.inDataDir(config.dataDir, vision.embedder.modelId, config.embed.flip),
    onProgress: (phase, total) => progress(phase, total),
    onFold: (fold, folds) =>
      logToStderr(`fold ${fold + 1}/${folds}: training a ${train.loss} head on the other folds' identities`),
    onEpoch: (r, total) => logToStderr(epochLine(r, total)),
  });
  if (opts.out) writeFileSync(opts.out, JSON.stringify(report, null, 2));
  if (opts.json) {
    console.log(JSON.stringify(report));
    return report;
  }
  console.log(`LFW ${report.protocol}; ${report.pairs} pairs, ${report.images} images`);
  console.log(
    `${report.loss} heads on ${report.base}: accuracy ${pct(report.accuracy)} ± ${pct(report.std)} (folds: ${report.folds.map((f) => pct(f.accuracy)).join(", ")})`,
  );
  console.log(
    `base model, same folds:  accuracy ${pct(report.baseAccuracy)} ± ${pct(report.baseStd)} (folds: ${report.folds.map((f) => pct(f.baseAccuracy)).join(", ")})`,
  );
  console.log(
    `TAR at FAR ≤ 1e-3 (per fold, mean): heads ${pct(report.tarAtFar1e3)}, base ${pct(report.baseTarAtFar1e3)}`,
  );
  for (const f of report.folds)
    console.log(
      `  fold ${f.fold + 1}: ${f.trainIdentities} identities / ${f.trainImages} images trained on, ${f.valIdentities} held out; best epoch ${f.bestEpoch} of ${f.epochsRun}; ${f.seconds.toFixed(0)} s`,
    );
  console.log(`${report.seconds.toFixed(0)} s (${report.backend})`);
  return report;
}
