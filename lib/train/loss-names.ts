/** The losses `vigil train` knows and their defaults, without tfjs (the CLI lists them at start-up). */

export const LOSSES = [
  "softmax",
  "center",
  "contrastive",
  "triplet",
  "triplet-semihard",
  "sphereface",
  "normface",
  "am-softmax",
  "arcface",
] as const;
export type LossName = (typeof LOSSES)[number];

/** Classification losses learn a class-weight matrix beside the head; metric losses compare samples directly. */
export const isClassification = (loss: LossName) =>
  loss !== "contrastive" && loss !== "triplet" && loss !== "triplet-semihard";

export interface LossParams {
  /** Scale of the normalised logits (NormFace, AM-softmax, ArcFace). */
  s: number;
  /** Margin: cosine (AM-softmax), angular in radians (ArcFace), integer multiplier (SphereFace), distance (metric). */
  m: number;
  /** Center loss: weight λ of the centre term and centre learning rate α. */
  centerWeight: number;
  centerAlpha: number;
}

/** Defaults per loss, from each paper's face-recognition setting. */
export function defaultParams(loss: LossName): LossParams {
  const base = { centerWeight: 0.01, centerAlpha: 0.5 };
  switch (loss) {
    case "am-softmax":
      return { ...base, s: 30, m: 0.35 };
    case "arcface":
      return { ...base, s: 30, m: 0.5 };
    case "normface":
      return { ...base, s: 16, m: 0 };
    case "sphereface":
      return { ...base, s: 1, m: 4 };
    case "contrastive":
      return { ...base, s: 1, m: 1 };
    case "triplet":
    case "triplet-semihard":
      return { ...base, s: 1, m: 0.3 };
    default:
      return { ...base, s: 1, m: 0 };
  }
}
