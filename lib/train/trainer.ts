import * as tf from "@tensorflow/tfjs";
import { shuffled, seededRandom } from "../eval/cluster.ts";
import { applyHead, TrainingDataError, type Head, type HeadLayer } from "../vision/models/heads.ts";
import { isClassification, lossFor, updateCenters, type LossName, type LossParams } from "./losses.ts";
import { verificationScores } from "./validation.ts";

/**
 * Trains a projection head (linear + batch norm, optionally one hidden linear + batch norm + ReLU before it) on
 * cached base embeddings, with Adam and no weight decay. A share of the identities is held out: after every
 * epoch the head, folded exactly as `vigil run` will apply it, is scored on verification among those unseen
 * identities, and the best epoch is kept (early stopping with patience).
 */

/** Loads tfjs-node (GPU, then CPU) when installed, so training uses native kernels there; never required. */
export async function trainingBackend(): Promise<string> {
  for (const name of ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"]) {
    try {
      // A variable specifier: these packages are optional and not installed here, so nothing may resolve them
      // at build time. Importing one registers its backend with the shared @tensorflow/tfjs core.
      await import(/* @vite-ignore */ name);
      await tf.setBackend("tensorflow");
      return `${name} (tensorflow)`;
    } catch {
      // not installed, or its native library does not load: the pure-JS CPU backend below
    }
  }
  await tf.setBackend("cpu");
  return "@tensorflow/tfjs (cpu, pure JavaScript)";
}

export interface TrainSample {
  identity: string;
  /** The base model's L2-normalised embedding. */
  vector: Float32Array;
}

export interface TrainOptions {
  loss: LossName;
  params: LossParams;
  dim: number;
  /** Units of the optional hidden layer; 0 for none. */
  hidden: number;
  epochs: number;
  batch: number;
  lr: number;
  /** Share of the identities held out for early stopping and calibration. */
  valFraction: number;
  /** Epochs without a better validation score before stopping. */
  patience: number;
  seed: number;
  /** Images per identity in a batch (metric losses need positives in the batch). */
  perIdentity: number;
}

export const DEFAULT_TRAIN: Omit<TrainOptions, "loss" | "params"> = {
  dim: 256,
  hidden: 0,
  epochs: 30,
  batch: 128,
  lr: 1e-3,
  valFraction: 0.15,
  patience: 6,
  seed: 1,
  perIdentity: 4,
};

export interface EpochRecord {
  epoch: number;
  loss: number;
  /** Verification accuracy (best threshold, genuine and impostor pairs weighted equally) on held-out identities. */
  valAccuracy: number;
  /**
   * TAR at FAR 1e-3 among the held-out identities' pairs: what picks the best epoch (accuracy saturates near 100%
   * on a strong base model; the operating point does not).
   */
  valTar: number;
  seconds: number;
}

export interface TrainResult {
  head: Omit<Head["manifest"], "id" | "weights" | "calibration" | "data" | "trainedAt" | "base" | "flip">;
  params: Head["params"];
  layers: HeadLayer[];
  history: EpochRecord[];
  bestEpoch: number;
  /** The base vectors' own scores on the held-out identities, for comparison. */
  baseVal: { accuracy: number; tar: number };
  split: { trainIdentities: string[]; valIdentities: string[]; trainImages: number; valImages: number };
  /** Held-out samples, for calibrating the head's threshold on identities it has not seen. */
  validation: TrainSample[];
}

/** Identities with at least two images: the others can neither be verified nor give a positive pair. */
export function splitIdentities(samples: TrainSample[], valFraction: number, seed: number) {
  const counts = new Map<string, number>();
  for (const s of samples) counts.set(s.identity, (counts.get(s.identity) ?? 0) + 1);
  const usable = [...counts.keys()].filter((id) => counts.get(id)! >= 2).sort();
  const order = shuffled(usable, seed);
  const nVal = valFraction > 0 ? Math.max(2, Math.round(usable.length * valFraction)) : 0;
  if (usable.length - nVal < 2)
    throw new TrainingDataError(
      `need at least ${nVal + 2} identities with two or more images to train and hold some out; found ${usable.length}`,
    );
  return { val: new Set(order.slice(0, nVal)), train: new Set(order.slice(nVal)) };
}

/** An epoch's batches: each identity's images in shuffled chunks of `perIdentity`, chunks shuffled, then cut. */
function epochBatches(byIdentity: number[][], batch: number, perIdentity: number, random: () => number) {
  const shuffle = <T>(a: T[]) => {
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
    return a;
  };
  const chunks: number[][] = [];
  for (const rows of byIdentity) {
    const s = shuffle([...rows]);
    for (let i = 0; i < s.length; i += perIdentity) chunks.push(s.slice(i, i + perIdentity));
  }
  const order = shuffle(chunks).flat();
  const out: number[][] = [];
  for (let i = 0; i < order.length; i += batch) out.push(order.slice(i, i + batch));
  // A last batch of one or two rows gives batch norm no statistics to speak of: merge it into the previous one.
  if (out.length > 1 && out.at(-1)!.length < Math.min(8, batch)) out.at(-2)!.push(...out.pop()!);
  return out;
}

interface BatchNorm {
  gamma: tf.Variable;
  beta: tf.Variable;
  mean: Float32Array;
  variance: Float32Array;
}

const EPS = 1e-3;
const MOMENTUM = 0.9;

function batchNorm(units: number): BatchNorm {
  return {
    gamma: tf.variable(tf.ones([units])),
    beta: tf.variable(tf.zeros([units])),
    mean: new Float32Array(units),
    variance: new Float32Array(units).fill(1),
  };
}

/** Batch statistics in training (the moving averages follow them outside the gradient). */
function normalise(z: tf.Tensor2D, bn: BatchNorm, stats: { mean: tf.Tensor; variance: tf.Tensor }[]) {
  const { mean, variance } = tf.moments(z, 0);
  stats.push({ mean: tf.keep(mean.clone()), variance: tf.keep(variance.clone()) });
  return z.sub(mean).div(variance.add(EPS).sqrt()).mul(bn.gamma).add(bn.beta) as tf.Tensor2D;
}

function glorot(inDim: number, outDim: number, random: () => number): Float32Array {
  const limit = Math.sqrt(6 / (inDim + outDim));
  return Float32Array.from({ length: inDim * outDim }, () => (random() * 2 - 1) * limit);
}

/** Linear then batch norm folded into one affine map [out][in] + bias, as the run-time head applies it. */
function fold(w: Float32Array, inDim: number, outDim: number, bn: BatchNorm) {
  const gamma = bn.gamma.dataSync();
  const beta = bn.beta.dataSync();
  const matrix = new Float32Array(inDim * outDim);
  const bias = new Float32Array(outDim);
  for (let o = 0; o < outDim; o++) {
    const scale = gamma[o]! / Math.sqrt(bn.variance[o]! + EPS);
    // w is [in][out] (x·W); the folded matrix is [out][in].
    for (let i = 0; i < inDim; i++) matrix[o * inDim + i] = w[i * outDim + o]! * scale;
    bias[o] = beta[o]! - bn.mean[o]! * scale;
  }
  return { matrix, bias };
}

export async function trainHead(
  samples: TrainSample[],
  options: TrainOptions,
  onEpoch: (record: EpochRecord, total: number) => void = () => {},
  onStep: () => void = () => {},
): Promise<TrainResult> {
  if (samples.length === 0) throw new TrainingDataError("no training samples: every photo was left out");
  const inDim = samples[0]!.vector.length;
  if (samples.some((s) => s.vector.length !== inDim))
    throw new TrainingDataError("training vectors have different sizes: they are not all from one model");
  const random = seededRandom(options.seed);
  const { train, val } = splitIdentities(samples, options.valFraction, options.seed);
  const trainIds = [...train].sort();
  const classOf = new Map(trainIds.map((id, k) => [id, k]));
  const trainRows = samples.filter((s) => train.has(s.identity));
  const validation = samples.filter((s) => val.has(s.identity));
  const byIdentity = trainIds.map(() => [] as number[]);
  trainRows.forEach((s, r) => byIdentity[classOf.get(s.identity)!]!.push(r));
  const x = tf.tensor2d(
    trainRows.flatMap((s) => [...s.vector]),
    [trainRows.length, inDim],
  );
  const y = tf.tensor1d(
    trainRows.map((s) => classOf.get(s.identity)!),
    "int32",
  );

  // The head starts as the identity map when it keeps the base's size, so training begins from the base model.
  const layers: HeadLayer[] = [];
  const weights: { w: tf.Variable; bn: BatchNorm; in: number; out: number }[] = [];
  const addLayer = (inD: number, outD: number, relu: boolean) => {
    const init =
      inD === outD && !relu
        ? Float32Array.from({ length: inD * outD }, (_, k) => (k % (outD + 1) === 0 ? 1 : 0))
        : glorot(inD, outD, random);
    weights.push({ w: tf.variable(tf.tensor2d(init, [inD, outD])), bn: batchNorm(outD), in: inD, out: outD });
    layers.push({ in: inD, out: outD, relu });
  };
  if (options.hidden > 0) addLayer(inDim, options.hidden, true);
  addLayer(options.hidden > 0 ? options.hidden : inDim, options.dim, false);
  const classification = isClassification(options.loss);
  const classWeights = classification
    ? tf.variable(tf.tensor2d(glorot(options.dim, trainIds.length, random), [options.dim, trainIds.length]))
    : undefined;
  let centers =
    options.loss === "center" ? (tf.zeros([trainIds.length, options.dim]) as tf.Tensor2D) : undefined;
  const optimizer = tf.train.adam(options.lr);

  const forward = (input: tf.Tensor2D, stats: { mean: tf.Tensor; variance: tf.Tensor }[]) => {
    let h = input;
    weights.forEach((layer, k) => {
      h = normalise(h.matMul(layer.w) as tf.Tensor2D, layer.bn, stats);
      if (layers[k]!.relu) h = h.relu();
    });
    return h;
  };

  const snapshot = () => weights.map((l) => fold(l.w.dataSync() as Float32Array, l.in, l.out, l.bn));
  const headOf = (params: Head["params"]): Head => ({
    manifest: { layers, dim: options.dim } as Head["manifest"],
    params,
  });
  const score = (vectors: Float32Array[]) => {
    const v = verificationScores(
      vectors,
      validation.map((s) => s.identity),
    );
    return { accuracy: v.balancedAccuracy, tar: v.tarAtFar1e3 };
  };
  const validate = (params: Head["params"]) =>
    score(
      applyHead(
        headOf(params),
        validation.map((s) => s.vector),
      ),
    );
  const baseVal = score(validation.map((s) => s.vector));

  const history: EpochRecord[] = [];
  let best = { epoch: 0, tar: -Infinity, accuracy: -Infinity, params: snapshot() };
  let iteration = 0;
  try {
    for (let epoch = 1; epoch <= options.epochs; epoch++) {
      const started = Date.now();
      let lossSum = 0;
      let steps = 0;
      for (const rows of epochBatches(byIdentity, options.batch, options.perIdentity, random)) {
        const index = tf.tensor1d(rows, "int32");
        const xb = tf.gather(x, index) as tf.Tensor2D;
        const yb = tf.gather(y, index) as tf.Tensor1D;
        const stats: { mean: tf.Tensor; variance: tf.Tensor }[] = [];
        let features: tf.Tensor2D | undefined;
        const loss = optimizer.minimize(() => {
          const f = forward(xb, stats);
          if (centers) features = tf.keep(f.clone());
          return lossFor(options.loss, options.params, {
            features: f,
            labels: yb,
            weights: classWeights as tf.Tensor2D | undefined,
            centers,
            iteration,
          });
        }, true)!;
        lossSum += (await loss.data())[0]!;
        steps++;
        iteration++;
        // Moving averages of the batch statistics, for the folded inference head.
        stats.forEach((s, k) => {
          const bn = weights[k]!.bn;
          const m = s.mean.dataSync();
          const v = s.variance.dataSync();
          // Unbiased variance, as frameworks keep it for inference.
          const n = rows.length;
          for (let j = 0; j < bn.mean.length; j++) {
            bn.mean[j] = MOMENTUM * bn.mean[j]! + (1 - MOMENTUM) * m[j]!;
            bn.variance[j] = MOMENTUM * bn.variance[j]! + (1 - MOMENTUM) * v[j]! * (n / Math.max(1, n - 1));
          }
          s.mean.dispose();
          s.variance.dispose();
        });
        if (centers && features) {
          const next = updateCenters(centers, features, yb, options.params.centerAlpha);
          centers.dispose();
          centers = next;
        }
        (features as tf.Tensor | undefined)?.dispose();
        tf.dispose([loss, index, xb, yb]);
        onStep();
      }
      const params = snapshot();
      const val = validate(params);
      const record = {
        epoch,
        loss: lossSum / steps,
        valAccuracy: val.accuracy,
        valTar: val.tar,
        seconds: (Date.now() - started) / 1000,
      };
      history.push(record);
      onEpoch(record, options.epochs);
      const better = val.tar > best.tar || (val.tar === best.tar && val.accuracy > best.accuracy);
      if (better) best = { epoch, tar: val.tar, accuracy: val.accuracy, params };
      else if (epoch - best.epoch >= options.patience) break;
    }
  } finally {
    tf.dispose([x, y, ...weights.flatMap((l) => [l.w, l.bn.gamma, l.bn.beta])]);
    classWeights?.dispose();
    centers?.dispose();
    optimizer.dispose();
  }
  return {
    head: {
      kind: "head",
      loss: options.loss,
      hyperParameters: {
        loss: options.loss,
        s: options.params.s,
        m: options.params.m,
        ...(options.loss === "center"
          ? { centerWeight: options.params.centerWeight, centerAlpha: options.params.centerAlpha }
          : {}),
        dim: options.dim,
        hidden: options.hidden,
        epochs: options.epochs,
        batch: options.batch,
        perIdentity: options.perIdentity,
        lr: options.lr,
        optimizer: "adam",
        weightDecay: 0,
        valFraction: options.valFraction,
        patience: options.patience,
        seed: options.seed,
        batchNormMomentum: MOMENTUM,
        batchNormEpsilon: EPS,
      },
      dim: options.dim,
      layers,
    },
    params: best.params,
    layers,
    history,
    bestEpoch: best.epoch,
    baseVal,
    split: {
      trainIdentities: trainIds,
      valIdentities: [...val].sort(),
      trainImages: trainRows.length,
      valImages: validation.length,
    },
    validation,
  };
}
