import * as tf from "@tensorflow/tfjs";

/**
 * The losses `vigil train` can train a head with, each a small function of tensors so it can be tested alone
 * against values worked out by hand. Conventions: `features` is [N, D] (the head's output), `labels` is an int32
 * [N] of class indices, `weights` is the classifier's [D, C] (classification losses only). Every loss returns a
 * scalar: the mean over the batch (over pairs or triplets for the metric losses).
 */

import type { LossName, LossParams } from "./loss-names.ts";
export { LOSSES, defaultParams, isClassification, type LossName, type LossParams } from "./loss-names.ts";

export type Tensor = tf.Tensor;
export type Scalar = tf.Scalar;

/** Rows scaled to unit length; the epsilon keeps a zero row finite (its gradient is then zero, not NaN). */
export function l2Rows(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => x.div(x.square().sum(1, true).add(1e-12).sqrt()));
}

/** Columns scaled to unit length: the class centres of the normalised-softmax family. */
function l2Cols(w: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => w.div(w.square().sum(0, true).add(1e-12).sqrt()));
}

/** cos θ between every feature and every class weight, [N, C]. */
export function cosines(features: tf.Tensor2D, weights: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => l2Rows(features).matMul(l2Cols(weights)).clipByValue(-1, 1) as tf.Tensor2D);
}

/**
 * The tensor's values without its history: masks and case choices (comparisons) have no gradient in tfjs, and
 * none is wanted, so they are computed from a copy the tape does not see.
 */
export const detached = <T extends tf.Tensor>(t: T): T => tf.tensor(t.dataSync(), t.shape, t.dtype) as T;

const oneHot = (labels: tf.Tensor1D, classes: number) => tf.oneHot(labels, classes).toFloat();

/** Mean cross-entropy of logits [N, C] against integer labels. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): Scalar {
  return tf.tidy(() => {
    const target = oneHot(labels, logits.shape[1]);
    return tf.logSoftmax(logits).mul(target).sum(1).neg().mean() as Scalar;
  });
}

/** Plain softmax: logits = x·W (no normalisation, no margin). */
export function softmaxLoss(features: tf.Tensor2D, weights: tf.Tensor2D, labels: tf.Tensor1D): Scalar {
  return tf.tidy(() => crossEntropy(features.matMul(weights) as tf.Tensor2D, labels));
}

/** Logits with the target column replaced: target ? targetLogit : otherLogit, per element. */
function withTarget(labels: tf.Tensor1D, target: tf.Tensor2D, other: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const mask = oneHot(labels, other.shape[1]);
    return target.mul(mask).add(other.mul(tf.scalar(1).sub(mask)));
  });
}

/** NormFace (Wang et al. 2017): features and class weights L2-normalised, logits s·cos θ. */
export function normFaceLoss(
  features: tf.Tensor2D,
  weights: tf.Tensor2D,
  labels: tf.Tensor1D,
  s: number,
): Scalar {
  return tf.tidy(() => crossEntropy(cosines(features, weights).mul(s), labels));
}

/** AM-softmax / CosFace (Wang et al. 2018): the target logit is s·(cos θ − m), the others s·cos θ. */
export function amSoftmaxLoss(
  features: tf.Tensor2D,
  weights: tf.Tensor2D,
  labels: tf.Tensor1D,
  s: number,
  m: number,
): Scalar {
  return tf.tidy(() => {
    const cos = cosines(features, weights);
    return crossEntropy(withTarget(labels, cos.sub(m), cos).mul(s), labels);
  });
}

/**
 * ArcFace (Deng et al. 2019): the target logit is s·cos(θ + m). cos(θ + m) starts rising again once θ + m > π
 * (a larger angle would then be rewarded), so past θ = π − m the target is cos θ − m·sin m instead (the
 * reference implementation's fallback, a CosFace-like margin): monotonic in θ over [0, π], with a small drop of
 * 1 − cos m − m·sin m at the switch.
 */
export function arcFaceLoss(
  features: tf.Tensor2D,
  weights: tf.Tensor2D,
  labels: tf.Tensor1D,
  s: number,
  m: number,
): Scalar {
  return tf.tidy(() => crossEntropy(arcFaceLogits(cosines(features, weights), labels, s, m), labels));
}

/** ArcFace's logits from cosines, exported for the tests of its fallback. */
export function arcFaceLogits(cos: tf.Tensor2D, labels: tf.Tensor1D, s: number, m: number): tf.Tensor2D {
  return tf.tidy(() => {
    // sin θ ≥ 0 for θ in [0, π]; the epsilon keeps sqrt's gradient finite at cos = ±1.
    const sin = tf.scalar(1).sub(cos.square()).clipByValue(1e-12, 1).sqrt();
    const shifted = cos.mul(Math.cos(m)).sub(sin.mul(Math.sin(m)));
    const threshold = Math.cos(Math.PI - m);
    const fallback = cos.sub(m * Math.sin(m));
    const target = tf.where(detached(cos).greater(threshold), shifted, fallback) as tf.Tensor2D;
    return withTarget(labels, target, cos).mul(s);
  });
}

/** Chebyshev polynomial T_m(c) = cos(m·θ) for c = cos θ: no arccos in the graph, so gradients stay finite. */
function cosMultiple(c: tf.Tensor2D, m: number): tf.Tensor2D {
  return tf.tidy(() => {
    let previous: tf.Tensor2D = tf.onesLike(c);
    let current: tf.Tensor2D = c.clone();
    for (let k = 1; k < m; k++) {
      const next = c.mul(2).mul(current).sub(previous) as tf.Tensor2D;
      previous = current;
      current = next;
    }
    return m === 0 ? previous : current;
  });
}

/**
 * SphereFace's ψ(θ) = (−1)^k·cos(mθ) − 2k for θ in [kπ/m, (k+1)π/m]: cos(mθ) alone is not monotonic in θ, this
 * piecewise form is (decreasing on [0, π], from 1 to −2m + 1), so a larger angle always means a smaller logit.
 */
export function sphereFacePsi(cos: tf.Tensor2D, m: number): tf.Tensor2D {
  return tf.tidy(() => {
    // k is piecewise constant in θ: computing it without a gradient is exact.
    const theta = tf.acos(detached(cos).clipByValue(-1, 1));
    const k = tf.floor(theta.mul(m / Math.PI)).clipByValue(0, m - 1);
    const sign = tf.scalar(1).sub(k.mod(2).mul(2));
    return sign.mul(cosMultiple(cos, m)).sub(k.mul(2)) as tf.Tensor2D;
  });
}

/**
 * SphereFace / A-softmax (Liu et al. 2017): class weights normalised, features not; the target logit is
 * ‖x‖·(λ·cos θ + ψ(θ)) / (1 + λ), the others ‖x‖·cos θ. λ anneals from a large value (plain normalised-weight
 * softmax, which converges) towards `lambdaMin` (mostly the margin); see `sphereFaceLambda`.
 */
export function sphereFaceLoss(
  features: tf.Tensor2D,
  weights: tf.Tensor2D,
  labels: tf.Tensor1D,
  m: number,
  lambda: number,
): Scalar {
  return tf.tidy(() => {
    const norm = features.square().sum(1, true).add(1e-12).sqrt();
    const cos = cosines(features, weights);
    const target = cos
      .mul(lambda)
      .add(sphereFacePsi(cos, m))
      .div(1 + lambda) as tf.Tensor2D;
    return crossEntropy(withTarget(labels, target, cos).mul(norm) as tf.Tensor2D, labels);
  });
}

/** SphereFace's annealing: λ = max(λmin, base·(1 + γ·iteration)^−power) (the authors' Caffe defaults). */
export function sphereFaceLambda(
  iteration: number,
  options: { base?: number; gamma?: number; power?: number; lambdaMin?: number } = {},
): number {
  const { base = 1000, gamma = 0.12, power = 1, lambdaMin = 5 } = options;
  return Math.max(lambdaMin, base * Math.pow(1 + gamma * iteration, -power));
}

/** Center loss (Wen et al. 2016): ½·mean ‖x_i − c_{y_i}‖², added to a softmax loss with a weight. */
export function centerLoss(features: tf.Tensor2D, labels: tf.Tensor1D, centers: tf.Tensor2D): Scalar {
  return tf.tidy(() => tf.gather(centers, labels).sub(features).square().sum(1).mean().mul(0.5) as Scalar);
}

/**
 * Center loss's centre update (not a gradient step): c_j ← c_j − α·Σ_{i: y_i = j}(c_j − x_i) / (1 + n_j), where
 * n_j counts the batch's samples of class j. Classes absent from the batch stay where they are.
 */
export function updateCenters(
  centers: tf.Tensor2D,
  features: tf.Tensor2D,
  labels: tf.Tensor1D,
  alpha: number,
): tf.Tensor2D {
  return tf.tidy(() => {
    // Per-class sums as one matrix product with the one-hot labels (tfjs's segment sum loops over classes).
    const membership = oneHot(labels, centers.shape[0]).transpose(); // [C, N]
    const diff = tf.gather(centers, labels).sub(features);
    const sums = membership.matMul(diff);
    const counts = membership.sum(1, true);
    return centers.sub(sums.div(counts.add(1)).mul(alpha)) as tf.Tensor2D;
  });
}

/** Euclidean distances between every pair of rows, [N, N]; the epsilon keeps sqrt differentiable at 0. */
export function pairwiseDistances(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const sq = x.square().sum(1, true);
    const d2 = sq.add(sq.transpose()).sub(x.matMul(x.transpose()).mul(2)).relu();
    return d2.add(1e-12).sqrt() as tf.Tensor2D;
  });
}

/** [N, N] masks: same label off the diagonal, different label. */
function pairMasks(labels: tf.Tensor1D): { positive: tf.Tensor2D; negative: tf.Tensor2D } {
  const n = labels.shape[0];
  const same = labels.expandDims(1).equal(labels.expandDims(0)).toFloat() as tf.Tensor2D;
  const positive = same.sub(tf.eye(n)) as tf.Tensor2D;
  const negative = tf.scalar(1).sub(same) as tf.Tensor2D;
  return { positive, negative };
}

/**
 * Contrastive loss (Hadsell et al. 2006) over every pair in the batch, on L2-normalised features:
 * ½·d² for a same-identity pair, ½·max(0, margin − d)² for a different-identity pair, averaged over pairs.
 */
export function contrastiveLoss(features: tf.Tensor2D, labels: tf.Tensor1D, margin: number): Scalar {
  return tf.tidy(() => {
    const d = pairwiseDistances(l2Rows(features));
    const { positive, negative } = pairMasks(labels);
    const pull = d.square().mul(positive);
    const push = tf.scalar(margin).sub(d).relu().square().mul(negative);
    const pairs = positive.sum().add(negative.sum());
    return pull.add(push).sum().mul(0.5).div(pairs.maximum(1)) as Scalar;
  });
}

/**
 * Triplet loss with batch-hard mining (Hermans et al. 2017), on L2-normalised features: for each anchor, its
 * farthest positive and nearest negative in the batch, max(0, margin + d(a, p) − d(a, n)), averaged over the
 * anchors that have a positive.
 */
export function tripletBatchHardLoss(features: tf.Tensor2D, labels: tf.Tensor1D, margin: number): Scalar {
  return tf.tidy(() => {
    const d = pairwiseDistances(l2Rows(features));
    const { positive, negative } = pairMasks(labels);
    const hardestPositive = d.mul(positive).max(1);
    // Non-negatives pushed out of the minimum's way by the largest distance in the batch (+1).
    const big = d.max().add(1);
    const hardestNegative = d.add(tf.scalar(1).sub(negative).mul(big)).min(1);
    const hasPositive = positive.sum(1).greater(0).toFloat();
    const losses = hardestPositive.sub(hardestNegative).add(margin).relu().mul(hasPositive);
    return losses.sum().div(hasPositive.sum().maximum(1)) as Scalar;
  });
}

/**
 * Triplet loss with semi-hard mining (Schroff et al. 2015, FaceNet), on L2-normalised features: for every
 * anchor–positive pair, the nearest negative farther than the positive (d(a, p) < d(a, n)); when there is none,
 * the farthest negative (as TensorFlow Addons' triplet_semihard_loss). max(0, margin + d(a, p) − d(a, n)),
 * averaged over anchor–positive pairs.
 */
export function tripletSemiHardLoss(features: tf.Tensor2D, labels: tf.Tensor1D, margin: number): Scalar {
  return tf.tidy(() => {
    const n = labels.shape[0];
    const d = pairwiseDistances(l2Rows(features));
    const { positive, negative } = pairMasks(labels);
    // [N (anchor), N (positive), N (negative)]: d(a, p) and d(a, n) broadcast against each other.
    const dap = d.expandDims(2);
    const dan = d.expandDims(1);
    const neg = negative.expandDims(1);
    const outside = detached(dan.greater(dap).toFloat().mul(neg));
    const big = d.max().add(1);
    const nearestOutside = dan.add(tf.scalar(1).sub(outside).mul(big)).min(2);
    const farthestNegative = d.mul(negative).max(1, true).tile([1, n]);
    const hasOutside = outside.sum(2).greater(0); // outside is already detached
    const chosen = tf.where(hasOutside, nearestOutside, farthestNegative);
    const losses = d.sub(chosen).add(margin).relu().mul(positive);
    return losses.sum().div(positive.sum().maximum(1)) as Scalar;
  });
}

/**
 * The named loss on a batch. `weights` is the class-weight matrix (classification losses), `centers` the center
 * loss's centres, `iteration` SphereFace's annealing step.
 */
export function lossFor(
  loss: LossName,
  params: LossParams,
  batch: {
    features: tf.Tensor2D;
    labels: tf.Tensor1D;
    weights?: tf.Tensor2D;
    centers?: tf.Tensor2D;
    iteration?: number;
  },
): Scalar {
  const { features, labels, weights, centers } = batch;
  const w = () => {
    if (!weights) throw new Error(`${loss} needs class weights`);
    return weights;
  };
  switch (loss) {
    case "softmax":
      return softmaxLoss(features, w(), labels);
    case "center":
      if (!centers) throw new Error("center loss needs its centres");
      return tf.tidy(() =>
        softmaxLoss(features, w(), labels).add(
          centerLoss(features, labels, centers).mul(params.centerWeight),
        ),
      );
    case "normface":
      return normFaceLoss(features, w(), labels, params.s);
    case "am-softmax":
      return amSoftmaxLoss(features, w(), labels, params.s, params.m);
    case "arcface":
      return arcFaceLoss(features, w(), labels, params.s, params.m);
    case "sphereface":
      return sphereFaceLoss(features, w(), labels, params.m, sphereFaceLambda(batch.iteration ?? 0));
    case "contrastive":
      return contrastiveLoss(features, labels, params.m);
    case "triplet":
      return tripletBatchHardLoss(features, labels, params.m);
    case "triplet-semihard":
      return tripletSemiHardLoss(features, labels, params.m);
  }
}
