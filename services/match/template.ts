import { l2normalize } from "../../lib/geometry/index.ts";

/**
 * How the match stage decides on a track. `vigil eval watchlist` runs its track decisions through this module
 * too, so the figures it prints are those of live matching.
 */
export interface DecisionRule {
  /** Cosine similarity of the operating point (calibrated per model, or a per-watchlist override). */
  threshold: number;
  /**
   * Least trust (0–1) a track's template needs before it may raise an alert or label a sighting. A look's trust
   * is the calibrated probability that it would be recognised; below this a face only extends its track.
   */
  minTrust: number;
}

export interface TemplateSnapshot {
  sum: number[];
  missed: number;
  best: number;
  looks: number;
}

/**
 * A look too hopeless to count still pulls the template a little, so a track made only of such looks keeps a
 * direction for the tracker to follow.
 */
const FLOOR_WEIGHT = 1e-3;

/**
 * The track's face: a quality-weighted mean of its looks' embeddings. Weights are the looks' recognisability
 * (a calibrated probability), so one sharp close-up (≈0.95) outweighs five blurred looks (≈0.05 each), where a
 * plain mean would let the blur dominate.
 */
export class TrackTemplate {
  private readonly sum: Float32Array;
  private unit: Float32Array | undefined;
  /** Probability that no look so far is recognisable, looks taken as independent. */
  private missed = 1;
  private best = 0;
  looks = 0;

  constructor(dim: number) {
    this.sum = new Float32Array(dim);
  }

  /** What a checkpoint keeps of it (the match stage survives a crash mid-track). */
  snapshot(): TemplateSnapshot {
    return { sum: Array.from(this.sum), missed: this.missed, best: this.best, looks: this.looks };
  }

  static restore(s: TemplateSnapshot): TrackTemplate {
    const t = new TrackTemplate(s.sum.length);
    t.sum.set(s.sum);
    t.missed = s.missed;
    t.best = s.best;
    t.looks = s.looks;
    return t;
  }

  static of(vector: Float32Array, recognisability: number): TrackTemplate {
    const t = new TrackTemplate(vector.length);
    t.add(vector, recognisability);
    return t;
  }

  add(vector: Float32Array, recognisability: number): void {
    const q = Math.min(1, Math.max(0, recognisability));
    const w = Math.max(FLOOR_WEIGHT, q);
    for (let i = 0; i < this.sum.length; i++) this.sum[i]! += w * vector[i]!;
    this.missed *= 1 - q;
    this.best = Math.max(this.best, q);
    this.looks++;
    this.unit = undefined;
  }

  /** The unit-length template; what the watchlist is matched against and what a sighting stores. */
  get vector(): Float32Array {
    this.unit ??= l2normalize(Float32Array.from(this.sum));
    return this.unit;
  }

  /**
   * How far the track can be trusted to show who it is: the chance that at least one look is recognisable.
   * Several agreeing poor looks (the tracker only joins looks that resemble each other) add up to what one good
   * look gives alone; a single poor look never does.
   */
  get trust(): number {
    return 1 - this.missed;
  }

  get bestLook(): number {
    return this.best;
  }
}

/** Whether a track whose template has this trust may be decided for a candidate scoring `score` against it. */
export function accepts(rule: DecisionRule, trust: number, score: number): boolean {
  return trust >= rule.minTrust && score >= rule.threshold;
}

/**
 * The same decision as one number, for sweeping a threshold in evaluations: the score where the rule lets the
 * track be decided, −∞ where it does not.
 */
export function decisionScore(rule: Pick<DecisionRule, "minTrust">, trust: number, score: number): number {
  return trust >= rule.minTrust ? score : -Infinity;
}
