import type { Vision } from "../vision/inference/vision.ts";
import { OnlineClusterer } from "../identities/clusterer.ts";
import { extractFaces, scanIdentities } from "./faces.ts";

export interface BCubed {
  precision: number;
  recall: number;
  f1: number;
}

/**
 * BCubed precision and recall (Bagga & Baldwin; Amigó et al. 2009): for each item, the share of its predicted
 * cluster that truly belongs with it, and the share of its true class that landed in its cluster, averaged over
 * items. Unlike pair counts, a large identity does not drown out the many small ones.
 */
export function bcubed(truth: readonly string[], predicted: readonly string[]): BCubed {
  if (truth.length !== predicted.length) throw new Error("truth and prediction differ in length");
  if (truth.length === 0) return { precision: 1, recall: 1, f1: 1 };
  const pairs = new Map<string, number>();
  const byCluster = new Map<string, number>();
  const byClass = new Map<string, number>();
  truth.forEach((t, i) => {
    const p = predicted[i]!;
    const key = `${p}\u0000${t}`;
    pairs.set(key, (pairs.get(key) ?? 0) + 1);
    byCluster.set(p, (byCluster.get(p) ?? 0) + 1);
    byClass.set(t, (byClass.get(t) ?? 0) + 1);
  });
  let precision = 0;
  let recall = 0;
  truth.forEach((t, i) => {
    const p = predicted[i]!;
    const both = pairs.get(`${p}\u0000${t}`)!;
    precision += both / byCluster.get(p)!;
    recall += both / byClass.get(t)!;
  });
  precision /= truth.length;
  recall /= truth.length;
  return { precision, recall, f1: (2 * precision * recall) / (precision + recall) };
}

/** Mulberry32: a small seeded generator, so `--seed` gives the same order on every machine. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffled<T>(items: readonly T[], seed: number): T[] {
  const random = seededRandom(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

export interface ClusterReport extends BCubed {
  bcubedPrecision: number;
  bcubedRecall: number;
  bcubedF1: number;
  modelId: string;
  threshold: number;
  seed: number;
  minImages: number;
  /** Images whose face joined the stream (no face found: left out, as a camera would never have seen it). */
  images: number;
  noFace: string[];
  identitiesTrue: number;
  identitiesMade: number;
  /** Identities made that hold faces of more than one true person: the errors that matter most. */
  mixedIdentities: number;
  seconds: number;
}

/**
 * `vigil eval cluster`: a folder-per-identity image set as a stream of sightings in a seeded random order,
 * each face through the product's detect → align → quality → embed path, assigned online as unknown
 * identities are; scored with BCubed against the folders.
 */
export async function evaluateCluster(
  vision: Vision,
  imagesDir: string,
  options: { seed: number; minImages: number; threshold: number },
  onProgress: (phase: string, total: number) => { tick(): void; done(): void },
): Promise<ClusterReport> {
  const started = Date.now();
  const identities = scanIdentities(imagesDir).filter((i) => i.files.length >= options.minImages);
  if (identities.length === 0)
    throw new Error(`no identity in ${imagesDir} has ${options.minImages} or more images`);
  const items = identities.flatMap((i) => i.files.map((file) => ({ file, scale: 1 })));
  const faces = await extractFaces(vision, imagesDir, items, "embed", onProgress);
  const stream = shuffled(
    faces.filter((f) => f.vector !== undefined),
    options.seed,
  );
  const clusterer = new OnlineClusterer(options.threshold);
  const truth = stream.map((f) => f.file.split(/[\\/]/)[0]!);
  const predicted = stream.map((f) => clusterer.assign(f.vector!).id);
  const score = bcubed(truth, predicted);
  const members = new Map<string, Set<string>>();
  predicted.forEach((p, i) => (members.get(p) ?? members.set(p, new Set()).get(p)!).add(truth[i]!));
  return {
    ...score,
    bcubedPrecision: score.precision,
    bcubedRecall: score.recall,
    bcubedF1: score.f1,
    modelId: vision.embedder.modelId,
    threshold: options.threshold,
    seed: options.seed,
    minImages: options.minImages,
    images: stream.length,
    noFace: faces.filter((f) => f.vector === undefined).map((f) => f.file),
    identitiesTrue: new Set(truth).size,
    identitiesMade: clusterer.size,
    mixedIdentities: [...members.values()].filter((s) => s.size > 1).length,
    seconds: (Date.now() - started) / 1000,
  };
}
