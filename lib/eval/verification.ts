/** Verification metrics over scored pairs, as in the LFW protocol. */

export interface ScoredPair {
  fold: number;
  same: boolean;
  score: number;
}

export function accuracyAt(pairs: ScoredPair[], threshold: number): number {
  if (pairs.length === 0) return 0;
  let correct = 0;
  for (const p of pairs) if (p.score >= threshold === p.same) correct++;
  return correct / pairs.length;
}

/** The threshold that maximises accuracy on `pairs` (midpoints between consecutive distinct scores). */
export function bestThreshold(pairs: ScoredPair[]): number {
  const scores = [...new Set(pairs.map((p) => p.score))].sort((a, b) => a - b);
  const candidates = [
    scores[0]! - 1e-6,
    ...scores.slice(1).map((s, i) => (s + scores[i]!) / 2),
    scores.at(-1)! + 1e-6,
  ];
  // Sweep: sort once, count correct decisions incrementally.
  const sorted = [...pairs].sort((a, b) => a.score - b.score);
  let correct = sorted.filter((p) => p.same).length; // threshold below everything: all accepted
  let best = { threshold: candidates[0]!, correct };
  let i = 0;
  for (const t of candidates.slice(1)) {
    while (i < sorted.length && sorted[i]!.score < t) {
      correct += sorted[i]!.same ? -1 : 1;
      i++;
    }
    if (correct > best.correct) best = { threshold: t, correct };
  }
  return best.threshold;
}

export interface FoldResult {
  fold: number;
  threshold: number;
  accuracy: number;
}

/** For each fold, the threshold is chosen on the other folds and applied to the held-out fold. */
export function crossValidate(
  pairs: ScoredPair[],
  folds: number,
): { folds: FoldResult[]; mean: number; std: number } {
  const results: FoldResult[] = [];
  for (let f = 0; f < folds; f++) {
    const train = pairs.filter((p) => p.fold !== f);
    const test = pairs.filter((p) => p.fold === f);
    const threshold = bestThreshold(train);
    results.push({ fold: f, threshold, accuracy: accuracyAt(test, threshold) });
  }
  const mean = results.reduce((s, r) => s + r.accuracy, 0) / results.length;
  const std = Math.sqrt(results.reduce((s, r) => s + (r.accuracy - mean) ** 2, 0) / results.length);
  return { folds: results, mean, std };
}

/**
 * True-accept rate at the strictest threshold whose false-accept rate is at most `far`. With N impostor pairs
 * the smallest measurable FAR is 1/N; the achieved FAR is reported alongside.
 */
export function tarAtFar(
  pairs: ScoredPair[],
  far: number,
): { tar: number; threshold: number; achievedFar: number } {
  const impostors = pairs
    .filter((p) => !p.same)
    .map((p) => p.score)
    .sort((a, b) => b - a);
  const genuine = pairs.filter((p) => p.same).map((p) => p.score);
  const allowed = Math.floor(far * impostors.length);
  // Accept strictly above the (allowed+1)-th highest impostor score.
  const threshold = impostors.length > allowed ? impostors[allowed]! + 1e-9 : -Infinity;
  const accepted = genuine.filter((s) => s >= threshold).length;
  const falseAccepts = impostors.filter((s) => s >= threshold).length;
  return {
    tar: genuine.length ? accepted / genuine.length : 0,
    threshold,
    achievedFar: impostors.length ? falseAccepts / impostors.length : 0,
  };
}
