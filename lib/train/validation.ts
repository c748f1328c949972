import { cosine } from "../geometry/index.ts";

/**
 * Verification among a set of labelled vectors, every pair: how well same-identity pairs separate from the
 * others. Used to pick a head's best epoch and to calibrate its threshold on identities it was not trained on.
 */
export interface VerificationScores {
  genuine: Float32Array;
  /** Cross-identity scores, highest first (the order `thresholdAtFar` takes). */
  impostors: Float32Array;
  /** At the best threshold, the mean of the genuine accept and impostor reject rates. */
  balancedAccuracy: number;
  /** Share of genuine pairs accepted at the strictest threshold with at most 1e-3 of impostor pairs accepted. */
  tarAtFar1e3: number;
}

export function verificationScores(vectors: Float32Array[], identities: string[]): VerificationScores {
  const genuine: number[] = [];
  const impostors: number[] = [];
  for (let i = 0; i < vectors.length; i++) {
    for (let j = i + 1; j < vectors.length; j++) {
      (identities[i] === identities[j] ? genuine : impostors).push(cosine(vectors[i]!, vectors[j]!));
    }
  }
  const g = Float32Array.from(genuine).sort();
  const im = Float32Array.from(impostors).sort();
  const impostors_ = im.slice().reverse();
  return {
    genuine: g,
    impostors: impostors_,
    balancedAccuracy: bestBalancedAccuracy(g, im),
    tarAtFar1e3: tarAt(g, impostors_, 1e-3),
  };
}

/** Genuine scores (ascending) accepted strictly above the ⌊far·N⌋+1-th highest impostor (descending). */
function tarAt(genuine: Float32Array, impostorsDesc: Float32Array, far: number): number {
  if (genuine.length === 0 || impostorsDesc.length === 0) return 0;
  const threshold = impostorsDesc[Math.floor(far * impostorsDesc.length)]!;
  let rejected = 0;
  while (rejected < genuine.length && genuine[rejected]! <= threshold) rejected++;
  return (genuine.length - rejected) / genuine.length;
}

/** Sweep over both sorted score lists: threshold t accepts s ≥ t. */
function bestBalancedAccuracy(genuine: Float32Array, impostors: Float32Array): number {
  if (genuine.length === 0 || impostors.length === 0) return 0;
  let best = 0;
  let gi = 0; // genuine scores below the threshold (rejected)
  let ii = 0; // impostor scores below the threshold (rejected, correctly)
  const candidates = Float32Array.from([...genuine, ...impostors]).sort();
  for (const t of candidates) {
    while (gi < genuine.length && genuine[gi]! < t) gi++;
    while (ii < impostors.length && impostors[ii]! < t) ii++;
    const accuracy = ((genuine.length - gi) / genuine.length + ii / impostors.length) / 2;
    if (accuracy > best) best = accuracy;
  }
  return best;
}
