import path from "node:path";
import { alignFace } from "../vision/pixels/align.ts";
import type { AlignedFace } from "../vision/inference/face-analyzer.ts";
import { decodeImage, type BgrImage, type FrameImage } from "../vision/pixels/image.ts";
import type { Vision } from "../vision/inference/vision.ts";
import { parseLfwPairs } from "./lfw-pairs.ts";
import { crossValidate, tarAtFar, type FoldResult, type ScoredPair } from "./verification.ts";
import { cosine, type Point } from "../geometry/index.ts";
import type { EmbeddingCache } from "./embedding-cache.ts";
import { applyHead, type Head } from "../vision/models/heads.ts";

export interface LfwReport {
  protocol: string;
  pack: string;
  detector: string;
  embedder: string;
  flip: boolean;
  pairs: number;
  images: number;
  /** Mean of the held-out fold accuracies, as a fraction. */
  accuracy: number;
  std: number;
  folds: FoldResult[];
  /** Mean of the per-fold thresholds (cosine similarity). */
  threshold: number;
  tarAtFar1e3: { tar: number; threshold: number; achievedFar: number; impostorPairs: number };
  /**
   * Thresholds at target false-accept rates over every cross-identity pair of images in the set (millions of
   * impostor pairs, so 1e-5 is measurable): the calibrated operating points stored with the model id.
   */
  calibration: { far: number; threshold: number; impostorPairs: number }[];
  noFace: { count: number; files: string[]; fallback: string };
  belowQualityGate: number;
  seconds: number;
}

/** The face LFW means in each image: the detection nearest the centre, larger faces preferred on ties. */
export function centralFace(faces: AlignedFace[], image: BgrImage): AlignedFace | undefined {
  const cx = image.width / 2,
    cy = image.height / 2;
  let best: AlignedFace | undefined;
  let bestCost = Infinity;
  for (const f of faces) {
    const b = f.detection.box;
    const d = Math.hypot(b.x + b.width / 2 - cx, b.y + b.height / 2 - cy);
    const cost = d / Math.max(1, Math.sqrt(b.width * b.height));
    if (cost < bestCost) {
      bestCost = cost;
      best = f;
    }
  }
  return best;
}

type OnProgress = (phase: string, total: number) => { tick(): void; done(): void };
const noProgress: OnProgress = () => ({ tick() {}, done() {} });

export interface LfwVectors {
  vectors: Map<string, Float32Array>;
  /** Images where no face was detected: aligned with the mean landmark layout of the detected faces. */
  missing: string[];
  /** Faces below the live quality gate (kept for the protocol), by file. */
  belowGate: Set<string>;
}

/**
 * The base model's vector of each image's central face (the LFW protocol's detect → align → embed), from the
 * embedding cache when every file is in it, else computed (and cached when a cache is given).
 */
export async function lfwVectors(
  vision: Vision,
  imagesDir: string,
  files: string[],
  onProgress: OnProgress = noProgress,
  cache?: EmbeddingCache,
): Promise<LfwVectors> {
  const cached = cache ? files.map((f) => cache.get(path.join(imagesDir, f))) : [];
  if (cache && cached.every((c) => c !== undefined)) {
    return {
      vectors: new Map(files.map((f, i) => [f, cached[i]!.vector])),
      missing: files.filter((_, i) => !cached[i]!.detected),
      belowGate: new Set(files.filter((_, i) => cached[i]!.detected && cached[i]!.gateReasons.length > 0)),
    };
  }
  const { embedder, analyzer } = vision;
  const crops = new Map<string, FrameImage>();
  const missing: { file: string; image: BgrImage }[] = [];
  const gate = new Map<string, string[]>();
  const landmarkSum: Point[] = Array.from({ length: 5 }, () => [0, 0] as Point);
  let detected = 0;

  const detecting = onProgress("detect + align", files.length);
  for (const file of files) {
    const image = await decodeImage(path.join(imagesDir, file), file);
    const face = centralFace(await analyzer.analyze(image), image);
    if (face) {
      crops.set(file, face.crop);
      gate.set(file, face.quality.reasons);
      face.detection.landmarks.forEach((p, i) => {
        landmarkSum[i]![0] += p[0] / image.width;
        landmarkSum[i]![1] += p[1] / image.height;
      });
      detected++;
    } else {
      missing.push({ file, image });
    }
    detecting.tick();
  }
  detecting.done();

  // No face found: align with the mean landmark layout of this set's detected faces (LFW images are centred).
  const meanLandmarks = landmarkSum.map(
    ([x, y]) => [x / Math.max(1, detected), y / Math.max(1, detected)] as Point,
  );
  for (const { file, image } of missing) {
    const points = meanLandmarks.map(([x, y]) => [x * image.width, y * image.height] as Point);
    crops.set(file, alignFace(image, points, embedder.template, embedder.width, embedder.height).crop);
  }

  const vectors = new Map<string, Float32Array>();
  const embedding = onProgress("embed", files.length);
  const chunk = 32;
  for (let i = 0; i < files.length; i += chunk) {
    const names = files.slice(i, i + chunk);
    const out = await embedder.embed(names.map((n) => crops.get(n)!));
    names.forEach((n, k) => vectors.set(n, out[k]!));
    for (let k = 0; k < names.length; k++) embedding.tick();
  }
  embedding.done();
  if (cache) {
    for (const f of files)
      cache.set(path.join(imagesDir, f), {
        vector: vectors.get(f)!,
        detected: gate.has(f),
        gateReasons: gate.get(f) ?? [],
      });
    cache.save();
  }
  const belowGate = new Set([...gate].filter(([, reasons]) => reasons.length > 0).map(([f]) => f));
  return { vectors, missing: missing.map((m) => m.file), belowGate };
}

export async function evaluateLfw(
  vision: Vision,
  imagesDir: string,
  pairsFile: string,
  onProgress: OnProgress = noProgress,
  flip = true,
  cache?: EmbeddingCache,
  /** A trained head applied to the base vectors, exactly as the embed stage applies it (`--head`). */
  head?: Head,
): Promise<LfwReport> {
  const started = Date.now();
  const { folds, pairs } = parseLfwPairs(pairsFile);
  const files = [...new Set(pairs.flatMap((p) => [p.a, p.b]))].sort();
  const { embedder } = vision;
  const base = await lfwVectors(vision, imagesDir, files, onProgress, cache);
  const { missing, belowGate } = base;
  if (head && head.manifest.base !== embedder.modelId)
    throw new Error(`head ${head.manifest.id} was trained on ${head.manifest.base}, not ${embedder.modelId}`);
  const vectors = head
    ? new Map(
        applyHead(
          head,
          files.map((f) => base.vectors.get(f)!),
        ).map((v, i) => [files[i]!, v]),
      )
    : base.vectors;

  const scored: ScoredPair[] = pairs.map((p) => ({
    fold: p.fold,
    same: p.same,
    score: cosine(vectors.get(p.a)!, vectors.get(p.b)!),
  }));
  const cv = crossValidate(scored, folds);
  const calibration = impostorCalibration(files, vectors, [1e-3, 1e-4, 1e-5]);
  const tar = tarAtFar(scored, 1e-3);
  return {
    protocol: `${folds}-fold LFW verification, threshold chosen on the other folds`,
    pack: vision.pack.id,
    detector: vision.detector.modelId,
    embedder: head ? `${head.manifest.id} (head on ${embedder.modelId})` : embedder.modelId,
    flip,
    pairs: pairs.length,
    images: files.length,
    accuracy: cv.mean,
    std: cv.std,
    folds: cv.folds,
    threshold: cv.folds.reduce((s, f) => s + f.threshold, 0) / cv.folds.length,
    tarAtFar1e3: { ...tar, impostorPairs: scored.filter((p) => !p.same).length },
    calibration,
    noFace: {
      count: missing.length,
      files: missing,
      fallback: "aligned with the mean landmark layout of the detected faces in this set",
    },
    belowQualityGate: belowGate.size,
    seconds: (Date.now() - started) / 1000,
  };
}

const identity = (file: string) => path.dirname(file);

export function impostorCalibration(files: string[], vectors: Map<string, Float32Array>, fars: number[]) {
  const list = files.map((f) => ({ id: identity(f), v: vectors.get(f)! }));
  const scores: number[] = [];
  for (let i = 0; i < list.length; i++) {
    for (let j = i + 1; j < list.length; j++) {
      if (list[i]!.id !== list[j]!.id) scores.push(cosine(list[i]!.v, list[j]!.v));
    }
  }
  const sorted = Float32Array.from(scores).sort().reverse();
  return fars.map((far) => {
    const allowed = Math.floor(far * sorted.length);
    return { far, threshold: (sorted[allowed] ?? -1) + 1e-6, impostorPairs: sorted.length };
  });
}
