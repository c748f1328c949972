import { execFileSync } from "node:child_process";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { samplePhotos } from "../../media/sample-media.ts";
import { sharedVision, testConfig } from "../../../test/helpers.ts";
import { cosine } from "../../geometry/index.ts";
import { decodeImage, resizeImage, type BgrImage, type FrameImage } from "../pixels/image.ts";
import { startVisionThreads } from "../threads/vision-thread.ts";
import { createDetectAlign } from "../../../services/detect-align/index.ts";
import type { AlignedFace, AnalyzeJob } from "./face-analyzer.ts";
import { loadVision, type Vision } from "./vision.ts";
import { BatchedYuNet } from "./batched-yunet.ts";

// Batched detection (models.gpu.batchedDetect) is the GPU's detection path; "on" runs it on the CPU provider,
// so what it finds is checked here against the one-frame path, with the real models.
const config = testConfig({ "models.gpu.batchedDetect": "on" });
let batchedVision: Promise<Vision> | undefined;
const vision = () => (batchedVision ??= loadVision(config));
const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups) await c();
});
// Watches the real batch detector's calls (it still runs): which frames went through it, and in how many runs.
const batchCalls = () => vi.spyOn(BatchedYuNet.prototype, "detectBatch");
afterEach(() => {
  vi.restoreAllMocks();
});

/** A photo as ingest delivers a 1080p camera's frame: yuv420p, converted by ffmpeg. */
function yuvFrame(photo: string, width: number, height: number): FrameImage {
  const data = execFileSync(
    "ffmpeg",
    [
      "-loglevel",
      "error",
      "-i",
      photo,
      "-vf",
      `scale=${width}:${height}`,
      "-pix_fmt",
      "yuv420p",
      "-f",
      "rawvideo",
      "-",
    ],
    { maxBuffer: 64 << 20 },
  );
  return { format: "yuv420p", width, height, data: new Uint8Array(data) };
}

/** A frame with no face in it: a smooth gradient with a few hard-edged blocks. */
function faceFree(width: number, height: number): BgrImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const block = ((x >> 6) + (y >> 6)) % 3 === 0 ? 80 : 0;
      const o = (y * width + x) * 3;
      data[o] = (x * 255) / width;
      data[o + 1] = (y * 255) / height;
      data[o + 2] = 128 + block - 40;
    }
  return { width, height, data };
}

const centre = (f: AlignedFace) => [
  f.detection.box.x + f.detection.box.width / 2,
  f.detection.box.y + f.detection.box.height / 2,
];

/** Each face of `a` paired with the face of `b` whose box centre is nearest (order may differ on ties). */
function pair(a: AlignedFace[], b: AlignedFace[]): [AlignedFace, AlignedFace][] {
  return a.map((f) => {
    const [cx, cy] = centre(f);
    const nearest = b.reduce((best, g) =>
      Math.hypot(centre(g)[0]! - cx!, centre(g)[1]! - cy!) <
      Math.hypot(centre(best)[0]! - cx!, centre(best)[1]! - cy!)
        ? g
        : best,
    );
    return [f, nearest];
  });
}

/** Same faces: count, boxes within `px`, and crops the embedder sees as the same face. */
async function expectSameFaces(v: Vision, batched: AlignedFace[], single: AlignedFace[], px: number) {
  expect(batched.length).toBe(single.length);
  if (single.length === 0) return;
  const pairs = pair(batched, single);
  for (const [b, s] of pairs) {
    for (const k of ["x", "y", "width", "height"] as const)
      expect(Math.abs(b.detection.box[k] - s.detection.box[k])).toBeLessThanOrEqual(px);
  }
  const eb = await v.embedder.embed(pairs.map(([b]) => b.crop));
  const es = await v.embedder.embed(pairs.map(([, s]) => s.crop));
  for (let i = 0; i < eb.length; i++) expect(cosine(eb[i]!, es[i]!)).toBeGreaterThan(0.99);
}

describe("batched detection in detect-align (models.gpu.batchedDetect on, CPU provider)", () => {
  it("finds in one batch of frames of several sizes the faces the one-frame path finds", async () => {
    const v = await vision();
    expect(v.analyzer.detectBatch).toBe(config.models.gpu.detectBatch);
    const photos = await samplePhotos(path.resolve(config.dataDir, "cache"));
    const [p0, p1, p3] = await Promise.all([0, 1, 3].map((i) => decodeImage(photos[i]!)));
    const frames: FrameImage[] = [
      await resizeImage(p0!, 1280, 720),
      await resizeImage(p1!, 960, 540),
      yuvFrame(photos[2]!, 1920, 1080),
      // 4:3: letterboxed at 512×384 (the batch's 384 rows), where the one-frame path at maxSide 640 uses 640×480.
      await resizeImage(p3!, 1024, 768),
      faceFree(800, 450),
    ];
    const jobs: AnalyzeJob[] = frames.map((image) => ({ image }));
    const calls = batchCalls();
    const found = await v.analyzer.analyzeBatch(jobs);
    expect(calls.mock.calls.map(([f]) => f)).toEqual([frames]);
    calls.mockRestore();
    expect(found).toHaveLength(frames.length);
    // 16:9 frames are scaled as the one-frame path scales them (longer side 640, in 640×384).
    for (const i of [0, 1, 2]) await expectSameFaces(v, found[i]!, await v.analyzer.analyze(frames[i]!), 1);
    // The 4:3 frame, against the one-frame path at the letterbox's own scale: only the batch's zero padding
    // beside it differs.
    await expectSameFaces(v, found[3]!, await v.analyzer.analyze(frames[3]!, { maxSide: 512 }), 2);
    expect(found[4]).toEqual([]);
    expect(found.slice(0, 4).flat().length).toBeGreaterThan(5);
  });

  it("keeps a camera's own size and small-face pass on the one-frame path, in the same batch", async () => {
    const v = await vision();
    const photos = await samplePhotos(path.resolve(config.dataDir, "cache"));
    const frame = await resizeImage(await decodeImage(photos[1]!), 1920, 1080);
    const smallFaces = { ...config.detect.smallFaces, mode: "second-pass" as const, nmsIou: 0.3 };
    const jobs: AnalyzeJob[] = [
      { image: frame },
      { image: frame, options: { maxSide: 320 } },
      { image: frame, options: { maxSide: 640, smallFaces } },
      { image: frame, options: { maxSide: 640, smallFaces: { ...smallFaces, mode: "off" } } },
    ];
    const calls = batchCalls();
    const found = await v.analyzer.analyzeBatch(jobs);
    // One run, of the two frames at the default size.
    expect(calls.mock.calls.map(([f]) => f.length)).toEqual([2]);
    calls.mockRestore();
    const boxes = (faces: AlignedFace[]) => faces.map((f) => f.detection.box);
    // Exactly what the one-frame path gives for those options (it is that path).
    expect(boxes(found[1]!)).toEqual(boxes(await v.analyzer.analyze(frame, { maxSide: 320 })));
    expect(boxes(found[2]!)).toEqual(boxes(await v.analyzer.analyze(frame, jobs[2]!.options)));
    // Options equal to the defaults are batched with the rest.
    expect(boxes(found[3]!)).toEqual(boxes(found[0]!));
    expect(boxes(found[1]!)).not.toEqual(boxes(found[0]!));
  });

  it("answers an empty batch with no results, and a face-free frame with no faces", async () => {
    const v = await vision();
    const calls = batchCalls();
    expect(await v.analyzer.analyzeBatch([])).toEqual([]);
    expect(calls).not.toHaveBeenCalled();
    expect(await v.analyzer.analyzeBatch([{ image: faceFree(640, 360) }])).toEqual([[]]);
  });

  it("is off on the CPU by default, and the stage batches what the detector takes a run", async () => {
    const plain = await sharedVision();
    expect(testConfig().models.gpu.batchedDetect).toBe("auto");
    expect(plain.analyzer.detectBatch).toBeUndefined();
    expect(createDetectAlign(config, { analyzer: plain.analyzer }).run.maxBatch).toBe(config.detect.maxBatch);
    const v = await vision();
    expect(createDetectAlign(config, { analyzer: v.analyzer }).run.maxBatch).toBe(
      config.models.gpu.detectBatch,
    );
  });

  it("gives the same faces in a vision worker thread, a batch sent whole to one worker", async () => {
    const v = await vision();
    const threads = await startVisionThreads(
      { ...config, models: { ...config.models, detectWorkers: 2 } },
      v,
      { analyzer: true },
    );
    cleanups.push(threads.close);
    expect(threads.analyzer.detectBatch).toBe(config.models.gpu.detectBatch);
    const photos = await samplePhotos(path.resolve(config.dataDir, "cache"));
    const frames = [
      await resizeImage(await decodeImage(photos[0]!), 1280, 720),
      yuvFrame(photos[2]!, 1920, 1080),
      faceFree(640, 360),
      // 4:3, where the batch (512×384) and the one-frame path (640×480) see different pixels: the worker's
      // faces equal to the batch's, not the one-frame path's, show the worker batched.
      await resizeImage(await decodeImage(photos[3]!), 1024, 768),
    ];
    const jobs = () => frames.map((image) => ({ image: { ...image, data: image.data.slice() } }));
    const here = await v.analyzer.analyzeBatch(jobs());
    const there = await threads.analyzer.analyzeBatch(jobs());
    expect(there.map((faces) => faces.map((f) => f.detection.box))).toEqual(
      here.map((faces) => faces.map((f) => f.detection.box)),
    );
    expect(there.flat().map((f) => Buffer.from(f.crop.data))).toEqual(
      here.flat().map((f) => Buffer.from(f.crop.data)),
    );
    expect(here.flat().length).toBeGreaterThan(2);
    const alone = await v.analyzer.analyze(frames[3]!);
    expect(alone.map((f) => f.detection.box)).not.toEqual(here[3]!.map((f) => f.detection.box));
    expect(await threads.analyzer.analyzeBatch([])).toEqual([]);
  });
});
