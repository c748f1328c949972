import path from "node:path";
import { cosine } from "../geometry/index.ts";
import type { EmbeddingCache } from "../eval/embedding-cache.ts";
import { scanIdentities } from "../eval/faces.ts";
import { lfwVectors } from "../eval/lfw.ts";
import { parseLfwPairs } from "../eval/lfw-pairs.ts";
import { accuracyAt, bestThreshold, tarAtFar, type ScoredPair } from "../eval/verification.ts";
import type { Vision } from "../vision/inference/vision.ts";
import { applyHead, TrainingDataError, type Head } from "../vision/models/heads.ts";
import { trainHead, type EpochRecord, type TrainOptions } from "./trainer.ts";

/**
 * LFW with trained heads, honestly: for each fold, a head is trained on the identities of the other folds only
 * (LFW's folds are identity-disjoint; any identity that also appears in the held-out fold is dropped from
 * training), its threshold is chosen on the other folds' pairs, and it is tested on the held-out fold. The base
 * model is scored the same way on the same folds, so `accuracy` and `baseAccuracy` are directly comparable.
 */

export interface HeadFold {
  fold: number;
  trainIdentities: number;
  trainImages: number;
  valIdentities: number;
  epochsRun: number;
  bestEpoch: number;
  threshold: number;
  accuracy: number;
  baseAccuracy: number;
  tarAtFar1e3: number;
  baseTarAtFar1e3: number;
  history: EpochRecord[];
  seconds: number;
}

export interface LfwHeadsReport {
  protocol: string;
  loss: string;
  base: string;
  flip: boolean;
  pairs: number;
  images: number;
  /** The trained heads' mean held-out-fold accuracy, and its standard deviation over folds. */
  accuracy: number;
  std: number;
  /** The base model's, on the same folds with the same threshold rule. */
  baseAccuracy: number;
  baseStd: number;
  /** Mean over folds of the TAR at the strictest threshold with FAR ≤ 1e-3 among that fold's impostor pairs. */
  tarAtFar1e3: number;
  baseTarAtFar1e3: number;
  hyperParameters: Record<string, unknown>;
  folds: HeadFold[];
  noFace: number;
  backend: string;
  seconds: number;
}

const identityOf = (file: string) => path.dirname(file);
const meanStd = (xs: number[]) => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return { mean, std: Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length) };
};

/** Per fold: threshold chosen on the other folds' pairs, accuracy on the fold, and TAR at FAR ≤ 1e-3 there. */
function foldResult(scored: ScoredPair[], fold: number) {
  const threshold = bestThreshold(scored.filter((p) => p.fold !== fold));
  const test = scored.filter((p) => p.fold === fold);
  return { threshold, accuracy: accuracyAt(test, threshold), tar: tarAtFar(test, 1e-3).tar };
}

export async function evaluateLfwHeads(
  vision: Vision,
  imagesDir: string,
  pairsFile: string,
  options: {
    train: TrainOptions;
    backend: string;
    /** Whether the base vectors include the flipped crop (config embed.flip). */
    flip: boolean;
    cache?: EmbeddingCache;
    onProgress?: (phase: string, total: number) => { tick(): void; done(): void };
    onFold?: (fold: number, folds: number) => void;
    onEpoch?: (record: EpochRecord, total: number) => void;
  },
): Promise<LfwHeadsReport> {
  const started = Date.now();
  const { folds, pairs } = parseLfwPairs(pairsFile);
  if (folds < 2)
    throw new TrainingDataError(`${pairsFile} has ${folds} fold; training on the others needs at least 2`);
  // Every image of every identity in the folder (training may use photos that are in no pair), and the pairs'.
  const pairFiles = new Set(pairs.flatMap((p) => [p.a, p.b]));
  const files = [...new Set([...scanIdentities(imagesDir).flatMap((i) => i.files), ...pairFiles])].sort();
  const { vectors, missing } = await lfwVectors(vision, imagesDir, files, options.onProgress, options.cache);
  const noFace = new Set(missing);

  const foldIdentities = Array.from({ length: folds }, () => new Set<string>());
  for (const p of pairs) {
    foldIdentities[p.fold]!.add(identityOf(p.a));
    foldIdentities[p.fold]!.add(identityOf(p.b));
  }
  const score = (map: Map<string, Float32Array>): ScoredPair[] =>
    pairs.map((p) => ({ fold: p.fold, same: p.same, score: cosine(map.get(p.a)!, map.get(p.b)!) }));
  const baseScored = score(vectors);

  const results: HeadFold[] = [];
  for (let fold = 0; fold < folds; fold++) {
    options.onFold?.(fold, folds);
    const foldStarted = Date.now();
    const heldOut = foldIdentities[fold]!;
    const trainIds = new Set(
      foldIdentities.flatMap((ids, f) => (f === fold ? [] : [...ids])).filter((id) => !heldOut.has(id)),
    );
    // Training sees only faces the detector found: a fallback alignment is a protocol device, not a face.
    const samples = files
      .filter((f) => trainIds.has(identityOf(f)) && !noFace.has(f))
      .map((f) => ({ identity: identityOf(f), vector: vectors.get(f)! }));
    const trained = await trainHead(samples, options.train, options.onEpoch);
    const head = { manifest: trained.head, params: trained.params } as Head;
    const projected = new Map<string, Float32Array>();
    const list = [...pairFiles];
    applyHead(
      head,
      list.map((f) => vectors.get(f)!),
    ).forEach((v, i) => projected.set(list[i]!, v));
    const mine = foldResult(score(projected), fold);
    const base = foldResult(baseScored, fold);
    results.push({
      fold,
      trainIdentities: trained.split.trainIdentities.length,
      trainImages: trained.split.trainImages,
      valIdentities: trained.split.valIdentities.length,
      epochsRun: trained.history.length,
      bestEpoch: trained.bestEpoch,
      threshold: mine.threshold,
      accuracy: mine.accuracy,
      baseAccuracy: base.accuracy,
      tarAtFar1e3: mine.tar,
      baseTarAtFar1e3: base.tar,
      history: trained.history,
      seconds: (Date.now() - foldStarted) / 1000,
    });
  }
  const acc = meanStd(results.map((r) => r.accuracy));
  const baseAcc = meanStd(results.map((r) => r.baseAccuracy));
  const { params, ...rest } = options.train;
  return {
    protocol: `${folds}-fold LFW; per fold a head trained on the other folds' identities only, threshold chosen on the other folds' pairs`,
    loss: options.train.loss,
    base: vision.embedder.modelId,
    flip: options.flip,
    pairs: pairs.length,
    images: files.length,
    accuracy: acc.mean,
    std: acc.std,
    baseAccuracy: baseAcc.mean,
    baseStd: baseAcc.std,
    tarAtFar1e3: meanStd(results.map((r) => r.tarAtFar1e3)).mean,
    baseTarAtFar1e3: meanStd(results.map((r) => r.baseTarAtFar1e3)).mean,
    hyperParameters: { ...rest, ...params },
    folds: results,
    noFace: missing.length,
    backend: options.backend,
    seconds: (Date.now() - started) / 1000,
  };
}
