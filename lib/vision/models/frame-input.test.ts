import { execFileSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { testConfig } from "../../../test/helpers.ts";
import { samplePhotos } from "../../media/sample-media.ts";
import { YuNetDetector } from "../inference/detectors/yunet.ts";
import { BatchedYuNet } from "../inference/batched-yunet.ts";
import { decodeImage } from "../pixels/image.ts";
import { loadVision } from "../inference/vision.ts";
import { ort } from "../inference/runtime.ts";
import { fillTensorFromYuv420, type Yuv420Image } from "../pixels/yuv.ts";
import { withYuv420Input, wholeFactor } from "./frame-input.ts";
import { decodeModel, encodeModel, floatValueInfo } from "./onnx-proto.ts";
import { modelSpec } from "./registry.ts";
import { ModelUnavailableError } from "./model-store.ts";
import { modelStoreFor } from "../inference/vision.ts";
import { readFileSync } from "node:fs";

const config = testConfig();

/** A sample photo as ffmpeg's scaler makes a live frame of it: yuv420p at the given size. */
async function frame(index: number, width: number, height: number): Promise<Yuv420Image> {
  const photos = await samplePhotos(path.resolve(config.dataDir, "cache"));
  const data = execFileSync(
    "ffmpeg",
    [
      "-loglevel",
      "error",
      "-i",
      photos[index]!,
      "-vf",
      `scale=${width}:${height}`,
      "-pix_fmt",
      "yuv420p",
    ].concat(["-f", "rawvideo", "-"]),
    { maxBuffer: 1 << 26 },
  );
  return { format: "yuv420p", width, height, data: new Uint8Array(data) };
}

/** YuNet's file, or undefined (said once per test) where the default pack cannot be had here. */
async function yunet(
  check: string,
): Promise<{ spec: ReturnType<typeof modelSpec>; path: string } | undefined> {
  const spec = modelSpec("yunet-2026may");
  const store = modelStoreFor(config, () => {});
  try {
    await store.ensure(spec);
  } catch (err) {
    if (!(err instanceof ModelUnavailableError)) throw err;
    console.log(`skipping the ${check}: ${spec.id} cannot be had here (${err.message})`);
    return undefined;
  }
  return { spec, path: store.artifactPath(spec) };
}

describe("frame-input detector graph", () => {
  it("knows which frame sizes sample down by a whole factor", () => {
    expect(wholeFactor(1280, 720, 640, 360)).toBe(2);
    expect(wholeFactor(1920, 1080, 640, 360)).toBe(3);
    expect(wholeFactor(640, 360, 640, 360)).toBe(1);
    expect(wholeFactor(1280, 720, 960, 540)).toBeUndefined();
  });

  it("fills the detector's tensor with what the JavaScript fill gives, padding included", async () => {
    const yunetModel = await yunet("frame-input tensor check");
    if (!yunetModel) return;
    const { spec } = yunetModel;
    for (const [width, height, k] of [
      [1280, 720, 2],
      [1920, 1080, 3],
      [640, 360, 1],
    ] as const) {
      const model = decodeModel(
        withYuv420Input(readFileSync(yunetModel.path), spec.input, {
          width,
          height,
          k,
          padWidth: 640,
          padHeight: 384,
        }),
      );
      // The prepared tensor itself as the graph's output: what the model's first layer would see.
      model.graph!.output = [floatValueInfo("input", [1, 3, 384, 640])];
      const session = await ort.InferenceSession.create(encodeModel(model));
      const image = await frame(0, width, height);
      const out = await session.run({ frames: new ort.Tensor("uint8", image.data, [1, image.data.length]) });
      await session.release();
      const expected = new Float32Array(3 * 384 * 640);
      fillTensorFromYuv420(image, 640, 360, spec.input, expected, 0, 640, 384);
      const got = out.input!.data as Float32Array;
      let worst = 0;
      for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(got[i]! - expected[i]!));
      expect(worst, `${width}×${height}`).toBeLessThan(1e-3);
    }
  });

  it("finds the same faces as the float-input detector, boxes and landmarks within a pixel", async () => {
    const vision = (frameInput: boolean) =>
      loadVision({ ...config, detect: { ...config.detect, frameInput } });
    const [on, off] = await Promise.all([vision(true), vision(false)]);
    if (!(on.detector instanceof YuNetDetector)) {
      console.log(
        `skipping the frame-input detector check: the pack's detector is ${on.detector.modelId}, not YuNet`,
      );
      return;
    }
    let faces = 0;
    for (const [index, width, height] of [
      [0, 1280, 720],
      [1, 1920, 1080],
      [2, 1280, 720],
    ] as const) {
      const image = await frame(index, width, height);
      // Once as decoded, once from shared memory (a frame slot), which the detector must copy for the runtime.
      const shared = new Uint8Array(new SharedArrayBuffer(image.data.byteLength));
      shared.set(image.data);
      const expected = await off.detector.detect(image);
      for (const data of [image.data, shared]) {
        const got = await on.detector.detect({ ...image, data });
        expect(got.length).toBe(expected.length);
        got.forEach((d, i) => {
          const e = expected[i]!;
          for (const key of ["x", "y", "width", "height"] as const)
            expect(Math.abs(d.box[key] - e.box[key])).toBeLessThan(1);
          d.landmarks.forEach((p, j) => {
            expect(Math.abs(p[0] - e.landmarks[j]![0])).toBeLessThan(1);
            expect(Math.abs(p[1] - e.landmarks[j]![1])).toBeLessThan(1);
          });
        });
      }
      faces += expected.length;
    }
    expect(faces).toBeGreaterThan(3);
  });

  it("batches live frames through the graph, grouped by size, with the finds of the float batch", async () => {
    const model = await yunet("batched frame-input check");
    if (!model) return;
    const { spec } = model;
    const open = (frameInput: boolean, bucket = false) =>
      BatchedYuNet.open(
        model.path,
        spec,
        config.models,
        config.detect,
        { width: 640, height: 384, maxBatch: 2, frameInput },
        // Bucketed as on a GPU: runs padded to 16 frames in the batch's own spare slots.
        { bucket },
      );
    const [on, off, bucketed] = await Promise.all([open(true), open(false), open(true, true)]);
    // Two sizes and a photo (BGR), interleaved: three frame-input runs (2 + 1 at 720p, 1 at 1080p) and one float run.
    const yuv = await Promise.all([
      frame(0, 1280, 720),
      frame(1, 1920, 1080),
      frame(2, 1280, 720),
      frame(3, 1280, 720),
    ]);
    const photo = await decodeImage((await samplePhotos(path.resolve(config.dataDir, "cache")))[4]!);
    const frames = [yuv[0]!, yuv[1]!, photo, yuv[2]!, yuv[3]!];
    const [got, expected] = [await on.detectBatch(frames), await off.detectBatch(frames)];
    expect(await bucketed.detectBatch(frames)).toEqual(got);
    await Promise.all([on.release(), off.release(), bucketed.release()]);
    expect(got).toHaveLength(frames.length);
    let faces = 0;
    got.forEach((dets, i) => {
      expect(dets.length, `frame ${i}`).toBe(expected[i]!.length);
      dets.forEach((d, j) => {
        for (const key of ["x", "y", "width", "height"] as const)
          expect(Math.abs(d.box[key] - expected[i]![j]!.box[key])).toBeLessThan(1);
      });
      faces += dets.length;
    });
    expect(faces).toBeGreaterThan(3);
  });
});
