import path from "node:path";
import { describe, expect, it } from "vitest";
import { samplePhotos } from "../../media/sample-media.ts";
import { sharedVision, testConfig } from "../../../test/helpers.ts";
import { modelSpec } from "../models/registry.ts";
import { decodeImage, resizeImage } from "../pixels/image.ts";
import { BatchedYuNet } from "./batched-yunet.ts";
import { YuNetDetector } from "./detectors/yunet.ts";
import { modelStoreFor } from "./vision.ts";

describe("batched YuNet", () => {
  it("finds in a batch exactly what the one-frame detector finds in each frame", async () => {
    const config = testConfig();
    const vision = await sharedVision();
    if (!(vision.detector instanceof YuNetDetector)) return;
    const photos = await samplePhotos(path.resolve(config.dataDir, "cache"));
    // 1280×720 frames: the one-frame detector scales them to 640×360 in a 640×384 tensor, as the batch does.
    const frames = await Promise.all(
      photos.slice(0, 3).map(async (p) => resizeImage(await decodeImage(p), 1280, 720)),
    );
    const spec = modelSpec("yunet-2026may");
    const batched = await BatchedYuNet.open(
      modelStoreFor(config, () => {}).artifactPath(spec),
      spec,
      config.models,
      config.detect,
      { width: 640, height: 384, maxBatch: 2 },
    );
    // Three frames in batches of two: the second run reuses slot 0 with the third frame.
    const found = await batched.detectBatch(frames);
    await batched.release();
    expect(found).toHaveLength(3);
    let faces = 0;
    for (let i = 0; i < frames.length; i++) {
      const alone = await vision.detector.detect(frames[i]!);
      faces += alone.length;
      expect(found[i]!.length).toBe(alone.length);
      found[i]!.forEach((d, j) => {
        expect(d.score).toBeCloseTo(alone[j]!.score, 5);
        expect(d.box.x).toBeCloseTo(alone[j]!.box.x, 3);
        expect(d.landmarks[2]![1]).toBeCloseTo(alone[j]!.landmarks[2]![1], 3);
      });
    }
    expect(faces).toBeGreaterThan(3);
  });

  it("pads runs to the runtime's batch buckets in its own tensor, with the same finds", async () => {
    const config = testConfig();
    const photos = await samplePhotos(path.resolve(config.dataDir, "cache"));
    const frames = await Promise.all(
      photos.slice(0, 3).map(async (p) => resizeImage(await decodeImage(p), 1280, 720)),
    );
    const spec = modelSpec("yunet-2026may");
    const open = (bucket: boolean) =>
      BatchedYuNet.open(
        modelStoreFor(config, () => {}).artifactPath(spec),
        spec,
        config.models,
        config.detect,
        { width: 640, height: 384, maxBatch: 3 },
        { bucket },
      );
    const [exact, bucketed] = [await open(false), await open(true)];
    try {
      // The first bucket is 16 (batchBucket): a run of 3 is a run of 16, and only 3 are decoded.
      await bucketed.fill(frames);
      expect((await bucketed.run(3))["cls_8"]!.dims[0]).toBe(16);
      expect((await exact.run(3))["cls_8"]!.dims[0]).toBe(3);
      const [a, b] = [await exact.detectBatch(frames), await bucketed.detectBatch(frames)];
      expect(b.map((faces) => faces.length)).toEqual(a.map((faces) => faces.length));
      b.flat().forEach((d, i) => expect(d.box.x).toBeCloseTo(a.flat()[i]!.box.x, 3));
      expect(a.flat().length).toBeGreaterThan(3);
    } finally {
      await exact.release();
      await bucketed.release();
    }
  });

  it("refuses an input size YuNet cannot take", async () => {
    const config = testConfig();
    const spec = modelSpec("yunet-2026may");
    await expect(
      BatchedYuNet.open("unused.onnx", spec, config.models, config.detect, {
        width: 650,
        height: 384,
        maxBatch: 1,
      }),
    ).rejects.toThrow(/multiple of 32/);
  });
});
