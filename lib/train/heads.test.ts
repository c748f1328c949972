import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { seededRandom } from "../eval/cluster.ts";
import { l2normalize } from "../geometry/index.ts";
import { tempDir } from "../../test/helpers.ts";
import { applyHead, listHeads, loadHead, saveHead, type Head } from "../vision/models/heads.ts";
import { defaultParams } from "./losses.ts";
import { DEFAULT_TRAIN, trainHead, trainingBackend, type TrainSample } from "./trainer.ts";
import { verificationScores } from "./validation.ts";

/** Identities as noisy copies of a random centre: vectors that cluster like a base model's embeddings. */
function synthetic(identities: number, perIdentity: number, dim: number, noise: number, seed: number) {
  const random = seededRandom(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random());
  const samples: TrainSample[] = [];
  for (let i = 0; i < identities; i++) {
    const centre = Float32Array.from({ length: dim }, gauss);
    for (let k = 0; k < perIdentity; k++) {
      const v = Float32Array.from(centre, (c) => c + noise * gauss());
      samples.push({ identity: `id-${i}`, vector: l2normalize(v) });
    }
  }
  return samples;
}

const manifestFields = {
  base: "synthetic-32",
  flip: true,
  calibration: { threshold: 0.5, far: 1e-4, source: "test" },
  data: { source: "synthetic", identities: 30, images: 180, trainIdentities: 25, valIdentities: 5 },
  trainedAt: new Date().toISOString(),
};

describe("a projection head at run time", () => {
  it("is affine layers with ReLU between them, then L2 normalisation (worked by hand)", () => {
    const head: Head = {
      manifest: {
        ...manifestFields,
        id: "hand",
        kind: "head",
        loss: "softmax",
        hyperParameters: {},
        dim: 2,
        layers: [
          { in: 2, out: 2, relu: true },
          { in: 2, out: 2, relu: false },
        ],
        weights: { file: "weights.bin", sha256: "", bytes: 0 },
      },
      params: [
        // layer 1: (x0 − x1, x0 + x1) + (0, −1), then ReLU
        { matrix: Float32Array.from([1, -1, 1, 1]), bias: Float32Array.from([0, -1]) },
        // layer 2: (2·h0, h1) + (0, 3)
        { matrix: Float32Array.from([2, 0, 0, 1]), bias: Float32Array.from([0, 3]) },
      ],
    };
    // x = (0.6, 0.8): layer 1 → (−0.2, 0.4) → ReLU (0, 0.4); layer 2 → (0, 3.4); normalised (0, 1)
    expect([...applyHead(head, [Float32Array.from([0.6, 0.8])])[0]!]).toEqual([0, 1]);
    // x = (1, 0): layer 1 → (1, 0); layer 2 → (2, 3); normalised (2, 3)/√13
    const [a, b] = applyHead(head, [Float32Array.from([1, 0])])[0]!;
    expect(a).toBeCloseTo(2 / Math.sqrt(13), 6);
    expect(b).toBeCloseTo(3 / Math.sqrt(13), 6);
    expect(() => applyHead(head, [new Float32Array(3)])).toThrow(/takes 2-D input, got 3-D/);
  });
});

describe("training a head on synthetic embeddings", () => {
  it("trains, saves, loads and applies to the same vectors; a tampered weights file is refused", async () => {
    await trainingBackend();
    const samples = synthetic(30, 6, 32, 0.5, 7);
    const epochs: number[] = [];
    const result = await trainHead(
      samples,
      {
        ...DEFAULT_TRAIN,
        loss: "am-softmax",
        params: { ...defaultParams("am-softmax"), s: 16, m: 0.2 },
        dim: 16,
        epochs: 8,
        batch: 32,
        valFraction: 0.2,
        patience: 8,
      },
      (r) => epochs.push(r.epoch),
    );
    expect(epochs).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(result.split.valIdentities).toHaveLength(6);
    expect(result.split.trainImages + result.split.valImages).toBe(180);
    // The held-out identities are never trained on.
    for (const id of result.split.valIdentities) expect(result.split.trainIdentities).not.toContain(id);
    expect(result.history.every((h) => Number.isFinite(h.loss))).toBe(true);
    // The loss falls over training, and the head separates unseen identities well (they are well separated).
    expect(result.history.at(-1)!.loss).toBeLessThan(result.history[0]!.loss);
    expect(result.history[result.bestEpoch - 1]!.valAccuracy).toBeGreaterThan(0.9);

    const dir = tempDir("vigil-heads-");
    const manifest = saveHead(dir, {
      manifest: { ...manifestFields, ...result.head, id: "synthetic+am-softmax" },
      params: result.params,
    });
    expect(manifest.weights.bytes).toBe((32 * 16 + 16) * 4);
    expect(() =>
      saveHead(dir, {
        manifest: { ...manifestFields, ...result.head, id: "synthetic+am-softmax" },
        params: [],
      }),
    ).toThrow(/already exists/);
    expect(listHeads(dir).map((h) => h.id)).toEqual(["synthetic+am-softmax"]);

    const loaded = loadHead(dir, "synthetic+am-softmax");
    const inputs = samples.slice(0, 12).map((s) => s.vector);
    const direct = applyHead({ manifest: { ...manifest }, params: result.params }, inputs);
    const viaDisk = applyHead(loaded, inputs);
    viaDisk.forEach((v, i) => expect([...v]).toEqual([...direct[i]!]));
    expect(viaDisk[0]!.length).toBe(16);
    // The validation score recorded for the best epoch is what the loaded head gives on the held-out identities.
    const val = verificationScores(
      applyHead(
        loaded,
        result.validation.map((s) => s.vector),
      ),
      result.validation.map((s) => s.identity),
    );
    expect(val.balancedAccuracy).toBeCloseTo(result.history[result.bestEpoch - 1]!.valAccuracy, 6);
    expect(val.tarAtFar1e3).toBeCloseTo(result.history[result.bestEpoch - 1]!.valTar, 6);

    const weightsFile = path.join(dir, "heads", "synthetic+am-softmax", "weights.bin");
    const bytes = readFileSync(weightsFile);
    bytes[0]! ^= 0xff;
    writeFileSync(weightsFile, bytes);
    expect(() => loadHead(dir, "synthetic+am-softmax")).toThrow(/sha256/);
    expect(() => loadHead(dir, "nope")).toThrow(/no trained head nope .*known: synthetic\+am-softmax/);
  });
});
