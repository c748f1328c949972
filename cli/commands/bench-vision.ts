import { existsSync } from "node:fs";
import path from "node:path";
import type { Config } from "../../lib/config/index.ts";
import { samplePhotos } from "../../lib/media/sample-media.ts";
import { FaceEmbedder } from "../../lib/vision/inference/embedder.ts";
import { decodeImage, resizeImage, type BgrImage, type FrameImage } from "../../lib/vision/pixels/image.ts";
import { embedderInfo } from "../../lib/vision/models/calibration.ts";
import { createSession } from "../../lib/vision/inference/runtime.ts";
import type { Vision } from "../../lib/vision/inference/vision.ts";
import { progress } from "../../lib/telemetry/progress.ts";
import { modelStoreFor } from "../../lib/vision/inference/vision.ts";
import { logToStderr } from "../context.ts";

export interface Timing {
  median: number;
  p95: number;
  runs: number;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[idx]!;
}

export async function timeIt(
  fn: () => Promise<unknown>,
  warmup: number,
  runs: number,
  tick: () => void,
): Promise<Timing> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn();
    times.push(performance.now() - t);
    tick();
  }
  times.sort((a, b) => a - b);
  return { median: percentile(times, 0.5), p95: percentile(times, 0.95), runs };
}

/** A real photo with faces when the sample media can be had, so NMS and landmark work is realistic. */
async function benchImage(config: Config): Promise<{ image: BgrImage; label: string }> {
  try {
    const [photo] = await samplePhotos(path.resolve(config.dataDir, "cache"));
    if (photo && existsSync(photo)) return { image: await decodeImage(photo), label: path.basename(photo) };
  } catch {
    // fall through to a generated frame
  }
  const w = 1280,
    h = 720;
  const data = new Uint8Array(w * h * 3).map((_, i) => (i * 2654435761) >>> 24);
  return { image: { width: w, height: h, data }, label: "generated noise (sample photos unavailable)" };
}

export async function benchVision(config: Config, vision: Vision, runs = 40) {
  const { image, label } = await benchImage(config);
  const frame640 = await resizeImage(image, 640, 480);
  const frame720 = await resizeImage(image, 1280, 720);
  // The embedding model alone, without flip augmentation: the per-face inference cost. With a trained head that is
  // its base model (the head's few affine layers are negligible beside it).
  const store = modelStoreFor(config, logToStderr);
  const embedSpec = embedderInfo(vision.embedder.modelId, config).spec;
  const plain = new FaceEmbedder(
    await createSession(store.artifactPath(embedSpec), config.models),
    embedSpec,
    false,
  );
  const faces = await vision.analyzer.analyze(frame720);
  const crop: FrameImage = faces[0]?.crop ?? {
    width: plain.width,
    height: plain.height,
    data: new Uint8Array(plain.width * plain.height * 3).fill(128),
  };
  const batch16 = Array.from({ length: 16 }, () => crop);
  const bar = progress("bench vision", runs * 4);
  const detect640 = await timeIt(
    () => vision.detector.detect(frame640),
    5,
    runs,
    () => bar.tick(),
  );
  const detect720 = await timeIt(
    () => vision.detector.detect(frame720),
    5,
    runs,
    () => bar.tick(),
  );
  const embed1 = await timeIt(
    () => plain.embed([crop]),
    5,
    runs,
    () => bar.tick(),
  );
  const embed16 = await timeIt(
    () => plain.embed(batch16),
    2,
    runs,
    () => bar.tick(),
  );
  bar.done();
  return {
    pack: vision.pack.id,
    detector: vision.detector.modelId,
    embedder: vision.embedder.modelId,
    /** The ONNX model the embed figures time: the head's base when a head runs. */
    embedModel: embedSpec.id,
    image: label,
    facesInBenchFrame: faces.length,
    detectorMaxSide: config.detect.maxSide,
    executionProvider: config.models.executionProvider,
    detectMs640: detect640.median,
    detectP95Ms640: detect640.p95,
    detectMs720p: detect720.median,
    detectP95Ms720p: detect720.p95,
    embedMsBatch1: embed1.median,
    embedP95MsBatch1: embed1.p95,
    embedMsPerFaceBatch16: embed16.median / 16,
    embedP95MsPerFaceBatch16: embed16.p95 / 16,
    runs,
  };
}
