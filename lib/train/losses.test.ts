import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  amSoftmaxLoss,
  arcFaceLogits,
  arcFaceLoss,
  centerLoss,
  contrastiveLoss,
  cosines,
  l2Rows,
  lossFor,
  normFaceLoss,
  softmaxLoss,
  sphereFaceLambda,
  sphereFaceLoss,
  sphereFacePsi,
  tripletBatchHardLoss,
  tripletSemiHardLoss,
  updateCenters,
  type LossName,
  defaultParams,
} from "./losses.ts";

// Expected values are worked out by hand from each paper's formula on inputs chosen so the angles are simple;
// the arithmetic is spelled out with Math so it can be followed, never taken from the code under test.

beforeAll(async () => {
  await tf.setBackend("cpu");
});
afterAll(() => tf.disposeVariables());

const value = (t: tf.Tensor) => {
  const v = t.dataSync()[0]!;
  t.dispose();
  return v;
};
const labels = (ids: number[]) => tf.tensor1d(ids, "int32");
/** Class weights as columns: W[:, j] = columns[j]. */
const columns = (cols: number[][]) => tf.tensor2d(cols).transpose() as tf.Tensor2D;
/** A unit vector at `deg` degrees. */
const at = (deg: number) => [Math.cos((deg * Math.PI) / 180), Math.sin((deg * Math.PI) / 180)];
/** Distance between unit vectors `deg` degrees apart: 2·sin(deg/2). */
const chord = (deg: number) => 2 * Math.sin((deg * Math.PI) / 360);
const softplus = (v: number) => Math.log(1 + Math.exp(v));

// x = (3, 4), |x| = 5; class 0 along (1, 0), class 1 along (0, 2): cos θ0 = 0.6, cos θ1 = 0.8; label 0.
const x345 = () => tf.tensor2d([[3, 4]]);
const wAxes = () =>
  columns([
    [1, 0],
    [0, 2],
  ]);

describe("classification losses, by hand", () => {
  it("softmax: −log softmax of x·W at the label, averaged over the batch", () => {
    // row 0: logits (1, 0), label 0 → log(1 + e^−1); row 1: logits (0, 2), label 1 → log(1 + e^−2)
    const loss = softmaxLoss(
      tf.tensor2d([
        [1, 0],
        [0, 2],
      ]),
      columns([
        [1, 0],
        [0, 1],
      ]),
      labels([0, 1]),
    );
    expect(value(loss)).toBeCloseTo((softplus(-1) + softplus(-2)) / 2, 5);
  });

  it("NormFace: logits s·cos θ", () => {
    // s = 2: logits (1.2, 1.6), label 0 → log(1 + e^(1.6 − 1.2))
    expect(value(normFaceLoss(x345(), wAxes(), labels([0]), 2))).toBeCloseTo(softplus(0.4), 5);
  });

  it("AM-softmax / CosFace: the target logit is s·(cos θ − m)", () => {
    // s = 2, m = 0.35: logits (2·(0.6 − 0.35), 1.6) = (0.5, 1.6) → log(1 + e^1.1)
    expect(value(amSoftmaxLoss(x345(), wAxes(), labels([0]), 2, 0.35))).toBeCloseTo(softplus(1.1), 5);
  });

  it("ArcFace: the target logit is s·cos(θ + m)", () => {
    // cos(θ + m) = cos θ·cos m − sin θ·sin m with cos θ = 0.6, sin θ = 0.8, m = 0.5
    const target = 0.6 * Math.cos(0.5) - 0.8 * Math.sin(0.5);
    expect(value(arcFaceLoss(x345(), wAxes(), labels([0]), 2, 0.5))).toBeCloseTo(
      softplus(1.6 - 2 * target),
      5,
    );
  });

  it("ArcFace falls back to cos θ − m·sin m once θ + m > π, and stays monotonic", () => {
    // cos θ = −0.9: θ = 2.69 rad, θ + 0.5 > π, so the target is −0.9 − 0.5·sin 0.5; the other logit is as is.
    const logits = arcFaceLogits(tf.tensor2d([[-0.9, 0.3]]), labels([0]), 1, 0.5);
    const [target, other] = [...logits.dataSync()];
    expect(target).toBeCloseTo(-0.9 - 0.5 * Math.sin(0.5), 5);
    expect(other).toBeCloseTo(0.3, 6);
    // Over θ from 0 to π the target logit never rises (cos(θ + m) alone would rise again past π − m).
    const thetas = Array.from({ length: 721 }, (_, i) => (i / 720) * Math.PI);
    const cos = tf.tensor2d(thetas.map((t) => [Math.cos(t), 0]));
    const curve = arcFaceLogits(cos, labels(thetas.map(() => 0)), 1, 0.5)
      .arraySync()
      .map((row) => row[0]!);
    for (let i = 1; i < curve.length; i++) expect(curve[i]!).toBeLessThanOrEqual(curve[i - 1]! + 1e-6);
    // At θ = π: the fallback's −1 − m·sin m, not cos(π + m) = −cos m.
    expect(curve.at(-1)!).toBeCloseTo(-1 - 0.5 * Math.sin(0.5), 5);
  });

  it("SphereFace's ψ(θ) = (−1)^k cos(mθ) − 2k is monotonic from 1 down to 1 − 2m", () => {
    // m = 4: θ = 0 → 1; θ = π/3 (k = 1) → −cos(4π/3) − 2 = −1.5; θ = 2π/3 (k = 2) → cos(8π/3) − 4 = −4.5;
    // θ = π (k = 3) → −cos(4π) − 6 = −7
    const psi = [...sphereFacePsi(tf.tensor2d([[1, 0.5, -0.5, -1]]), 4).dataSync()];
    expect(psi[0]).toBeCloseTo(1, 4);
    expect(psi[1]).toBeCloseTo(-1.5, 4);
    expect(psi[2]).toBeCloseTo(-4.5, 4);
    expect(psi[3]).toBeCloseTo(-7, 4);
    const thetas = Array.from({ length: 361 }, (_, i) => (i / 360) * Math.PI);
    const curve = [...sphereFacePsi(tf.tensor2d([thetas.map(Math.cos)]), 4).dataSync()];
    for (let i = 1; i < curve.length; i++) expect(curve[i]!).toBeLessThanOrEqual(curve[i - 1]! + 1e-4);
  });

  it("SphereFace: target logit ‖x‖·(λ cos θ + ψ(θ)) / (1 + λ), others ‖x‖·cos θ", () => {
    // m = 2, θ = acos 0.6 < π/2 so k = 0 and ψ = cos 2θ = 2·0.6² − 1 = −0.28; λ = 1: (0.6 − 0.28) / 2 = 0.16;
    // ‖x‖ = 5: logits (0.8, 4.0) → log(1 + e^3.2)
    expect(value(sphereFaceLoss(x345(), wAxes(), labels([0]), 2, 1))).toBeCloseTo(softplus(3.2), 4);
  });

  it("SphereFace's λ anneals as max(λmin, base·(1 + γ·it)^−power)", () => {
    expect(sphereFaceLambda(0)).toBe(1000);
    expect(sphereFaceLambda(100)).toBeCloseTo(1000 / (1 + 0.12 * 100), 9);
    expect(sphereFaceLambda(1e6)).toBe(5);
  });

  it("center loss: ½·mean ‖x − c_y‖², and the centre update moves centres by α·Σ(c − x)/(1 + n)", () => {
    const features = tf.tensor2d([
      [1, 0],
      [0, 1],
      [2, 0],
    ]);
    const ys = labels([0, 1, 0]);
    const centers = tf.tensor2d([
      [1, 1],
      [0, 0],
      [5, 5],
    ]);
    // ‖(1,0)−(1,1)‖² = 1, ‖(0,1)−(0,0)‖² = 1, ‖(2,0)−(1,1)‖² = 2 → ½·4/3
    expect(value(centerLoss(features, ys, centers))).toBeCloseTo(2 / 3, 5);
    // class 0 (n = 2): Σ(c − x) = (0, 1) + (−1, 1) = (−1, 2); /3, ×0.5 → (−1/6, 1/3); c0 = (7/6, 2/3)
    // class 1 (n = 1): Σ = (0, −1); /2, ×0.5 → (0, −1/4); c1 = (0, 1/4); class 2 is absent and stays.
    const updated = [...updateCenters(centers, features, ys, 0.5).dataSync()];
    const expected = [7 / 6, 2 / 3, 0, 0.25, 5, 5];
    updated.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 5));
  });
});

describe("metric losses, by hand", () => {
  it("contrastive: ½d² for same-identity pairs, ½max(0, margin − d)² for the others, over every pair", () => {
    // points at 0°, 90°, 0° (labels 0, 0, 1): d01 = √2, d02 = 0, d12 = √2. Ordered pairs: (0,1), (1,0) pull
    // ½·2 each; (0,2), (2,0) push ½·(1 − 0)² each; (1,2), (2,1) are past the margin: 0. Total 3 over 6 pairs.
    const loss = contrastiveLoss(tf.tensor2d([at(0), at(90), at(0)]), labels([0, 0, 1]), 1);
    expect(value(loss)).toBeCloseTo(3 / 6, 4);
  });

  // Unit vectors at 0° and 90° (identity 0), 60° and 200° (identity 1); margin 0.3.
  const points = () => tf.tensor2d([at(0), at(90), at(60), at(200)]);
  const ids = () => labels([0, 0, 1, 1]);

  it("triplet, batch-hard: the farthest positive against the nearest negative, per anchor", () => {
    const perAnchor = [
      0.3 + chord(90) - chord(60), // anchor 0°: positive 90°, nearest negative 60°
      0.3 + chord(90) - chord(30), // anchor 90°: positive 0°, nearest negative 60°
      0.3 + chord(140) - chord(30), // anchor 60°: positive 200°, nearest negative 90°
      0.3 + chord(140) - chord(110), // anchor 200°: positive 60°, nearest negative 90°
    ].map((v) => Math.max(0, v));
    const loss = tripletBatchHardLoss(points(), ids(), 0.3);
    expect(value(loss)).toBeCloseTo(perAnchor.reduce((a, b) => a + b) / 4, 4);
  });

  it("triplet, semi-hard: the nearest negative beyond the positive, else the farthest negative", () => {
    const perPair = [
      0.3 + chord(90) - chord(160), // (0°, 90°): negatives 60° (closer) and 200° (beyond) → 200°
      0.3 + chord(90) - chord(110), // (90°, 0°): negatives 60° (closer) and 200° (beyond) → 200°
      0.3 + chord(140) - chord(60), // (60°, 200°): none beyond → the farthest, 0°
      0.3 + chord(140) - chord(160), // (200°, 60°): 90° at 110° (closer), 0° at 160° (beyond) → 0°
    ].map((v) => Math.max(0, v));
    const loss = tripletSemiHardLoss(points(), ids(), 0.3);
    expect(value(loss)).toBeCloseTo(perPair.reduce((a, b) => a + b) / 4, 4);
  });
});

describe("one gradient step raises a sample's target logit", () => {
  const classification: LossName[] = ["softmax", "center", "sphereface", "normface", "am-softmax", "arcface"];
  for (const loss of classification) {
    it(`${loss}: the cosine to the sample's own class rises and the loss falls`, () => {
      const features = tf.variable(
        tf.tensor2d([
          [1, 0.2],
          [0.3, 1],
          [-1, 0.4],
        ]),
      );
      const weights = tf.variable(
        columns([
          [0.2, 1],
          [1, 0.1],
          [-0.5, -1],
        ]),
      );
      const centers = tf.tensor2d([
        [0, 1],
        [1, 0],
        [0, -1],
      ]);
      const ys = labels([0, 1, 2]);
      const params = defaultParams(loss);
      const run = () => lossFor(loss, params, { features, labels: ys, weights, centers, iteration: 10_000 });
      const targetCos = () => {
        const cos = cosines(features, weights).arraySync();
        return [0, 1, 2].map((i) => cos[i]![i]!);
      };
      const before = targetCos();
      const lossBefore = value(run());
      tf.train.sgd(0.01).minimize(run as () => tf.Scalar);
      const after = targetCos();
      for (let i = 0; i < 3; i++) expect(after[i]!).toBeGreaterThan(before[i]!);
      expect(value(run())).toBeLessThan(lossBefore);
      features.dispose();
      weights.dispose();
    });
  }

  const metric: LossName[] = ["contrastive", "triplet", "triplet-semihard"];
  for (const loss of metric) {
    it(`${loss}: each sample's cosine to its positive rises`, () => {
      // Two identities interleaved: each sample's nearest neighbours belong to the other identity.
      const features = tf.variable(tf.tensor2d([at(0), at(90), at(45), at(135)]));
      const ys = labels([0, 0, 1, 1]);
      const positiveCos = () => {
        const c = l2Rows(features).matMul(l2Rows(features).transpose()).arraySync() as number[][];
        return [c[0]![1]!, c[2]![3]!];
      };
      const before = positiveCos();
      const run = () => lossFor(loss, { ...defaultParams(loss), m: 1 }, { features, labels: ys });
      const lossBefore = value(run());
      tf.train.sgd(0.05).minimize(run as () => tf.Scalar);
      const after = positiveCos();
      expect(after[0]!).toBeGreaterThan(before[0]!);
      expect(after[1]!).toBeGreaterThan(before[1]!);
      expect(value(run())).toBeLessThan(lossBefore);
      features.dispose();
    });
  }
});
