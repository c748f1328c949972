import type { FrameImage } from "./image.ts";
import { toGray } from "./image.ts";
import { isYuv420, lumaLaplacianVariance } from "./yuv.ts";
import type { Config } from "../../config/index.ts";
import type { QualityScores } from "../../contracts/index.ts";
import { type Point } from "../../geometry/index.ts";

export type QualityGateConfig = Config["quality"];

const deg = (rad: number) => (rad * 180) / Math.PI;
const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

let graySpare = new Float32Array(112 * 112);

/** Variance of the 4-neighbour Laplacian over the grey image: low means blurred (Pech-Pacheco et al.). */
export function sharpness(image: FrameImage): number {
  if (isYuv420(image)) return lumaLaplacianVariance(image);
  const { width: w, height: h } = image;
  // Every face of every frame is scored: the grey image goes into one buffer kept between calls (this runs
  // synchronously, so no two calls share it), not a fresh array each time.
  if (graySpare.length < w * h) graySpare = new Float32Array(w * h);
  const g = toGray(image, graySpare);
  let sum = 0,
    sumSq = 0,
    n = 0;
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      const i = y * w + x;
      const lap = g[i - 1]! + g[i + 1]! + g[i - w]! + g[i + w]! - 4 * g[i]!;
      sum += lap;
      sumSq += lap * lap;
      n++;
    }
  }
  return n === 0 ? 0 : sumSq / n - (sum / n) ** 2;
}

/**
 * Head pose from the five landmarks, after undoing in-plane roll: yaw from where the nose sits between the eyes,
 * pitch from where it sits between the eye line and the mouth line. A coarse estimate, enough to gate on.
 */
export function poseFromLandmarks(landmarks: Point[]): { yawDeg: number; pitchDeg: number; rollDeg: number } {
  const [le, re, nose, lm, rm] = landmarks as [Point, Point, Point, Point, Point];
  const roll = Math.atan2(re[1] - le[1], re[0] - le[0]);
  const cos = Math.cos(-roll),
    sin = Math.sin(-roll);
  const r = (p: Point): Point => [p[0] * cos - p[1] * sin, p[0] * sin + p[1] * cos];
  const [L, R, N, ML, MR] = [r(le), r(re), r(nose), r(lm), r(rm)];
  const dl = N[0] - L[0];
  const dr = R[0] - N[0];
  const yawRatio = dl + dr === 0 ? 0 : (dl - dr) / (dl + dr);
  const eyeY = (L[1] + R[1]) / 2;
  const mouthY = (ML[1] + MR[1]) / 2;
  const span = mouthY - eyeY;
  // On a frontal face the nose tip sits ~49% of the way from the eye line to the mouth line (ArcFace template).
  const t = span <= 0 ? 1 : (N[1] - eyeY) / span;
  return {
    yawDeg: deg(Math.asin(clamp(yawRatio, -1, 1))),
    pitchDeg: deg(Math.asin(clamp((t - 0.49) * 2.5, -1, 1))),
    rollDeg: deg(roll),
  };
}

export interface QualityInput {
  box: { width: number; height: number };
  landmarks: Point[];
  detScore: number;
  /** The aligned crop; sharpness is measured there so it is comparable across face sizes. */
  crop: FrameImage;
}

export interface QualityVerdict {
  scores: QualityScores;
  /**
   * The photo gate (enrolment, search, exclusions): empty when the face passes; otherwise one human-readable
   * reason per failed check.
   */
  reasons: string[];
  /**
   * Live video's gate, the same way: only what can never be recognised (below `gate.live`'s floors, or an
   * uncertain detection). A face that passes this but not the photo gate is a weak look, which the
   * match stage weighs by its recognisability instead of dropping: a distant face at 30 px is blurred by any
   * measure, and is still often the only look a camera gets.
   */
  liveReasons: string[];
}

export function assessQuality(input: QualityInput, gate: QualityGateConfig): QualityVerdict {
  const [le, re] = input.landmarks as [Point, Point];
  const interOcular = Math.hypot(re[0] - le[0], re[1] - le[1]);
  const pose = poseFromLandmarks(input.landmarks);
  const scores: QualityScores = {
    faceSize: Math.min(input.box.width, input.box.height),
    interOcular,
    sharpness: sharpness(input.crop),
    yawDeg: pose.yawDeg,
    pitchDeg: pose.pitchDeg,
    detScore: input.detScore,
  };
  const f1 = (v: number) => v.toFixed(1);
  const gated = (floor: QualityGateConfig["live"]) => {
    const reasons: string[] = [];
    if (scores.faceSize < floor.minFaceSize)
      reasons.push(`too small: face ${f1(scores.faceSize)} px < ${floor.minFaceSize} px`);
    if (interOcular < floor.minInterOcular)
      reasons.push(`eyes too close: inter-ocular ${f1(interOcular)} px < ${floor.minInterOcular} px`);
    if (scores.sharpness < floor.minSharpness)
      reasons.push(`blurred: sharpness ${f1(scores.sharpness)} < ${floor.minSharpness}`);
    if (Math.abs(scores.yawDeg) > floor.maxYawDeg)
      reasons.push(`turned away: yaw ${f1(scores.yawDeg)}° beyond ±${floor.maxYawDeg}°`);
    if (Math.abs(scores.pitchDeg) > floor.maxPitchDeg)
      reasons.push(`tilted: pitch ${f1(scores.pitchDeg)}° beyond ±${floor.maxPitchDeg}°`);
    if (scores.detScore < gate.minDetScore)
      reasons.push(`uncertain detection: score ${scores.detScore.toFixed(2)} < ${gate.minDetScore}`);
    return reasons;
  };
  // The live gate never asks more than the photo gate does.
  const live = {
    minFaceSize: Math.min(gate.live.minFaceSize, gate.minFaceSize),
    minInterOcular: Math.min(gate.live.minInterOcular, gate.minInterOcular),
    minSharpness: Math.min(gate.live.minSharpness, gate.minSharpness),
    maxYawDeg: Math.max(gate.live.maxYawDeg, gate.maxYawDeg),
    maxPitchDeg: Math.max(gate.live.maxPitchDeg, gate.maxPitchDeg),
  };
  return { scores, reasons: gated(gate), liveReasons: gated(live) };
}

/** One number to pick a track's best face by: sharp, frontal, large. */
export function qualityRank(s: QualityScores): number {
  const frontal = Math.cos((s.yawDeg * Math.PI) / 180) * Math.cos((s.pitchDeg * Math.PI) / 180);
  return s.detScore * frontal * Math.min(1, s.interOcular / 40) * Math.min(1, s.sharpness / 100);
}

/**
 * Logistic coefficients that turn a face's quality scores into the probability that it matches its own
 * enrolment photo at the model's operating point. Fitted per embedding model (`vigil eval quality`),
 * stored with the model's calibration, because what a model can still recognise differs per model.
 */
export interface RecognisabilityModel {
  intercept: number;
  /** Per unit of ln(sharpness): the Laplacian variance of the aligned crop, which a small or blurred face lacks. */
  logSharpness: number;
  detScore: number;
}

/**
 * The features the model is fitted on, in the order of `RECOGNISABILITY_TERMS`. Sharpness is measured on the
 * aligned crop, so a small face (upsampled to the crop) scores low on it as a blurred one does; face size and
 * pose fitted with implausible signs on the dev sets once sharpness was known, so they are left to the gate.
 */
export function recognisabilityFeatures(s: QualityScores): number[] {
  return [Math.log(Math.max(1, s.sharpness)), s.detScore];
}
export const RECOGNISABILITY_TERMS = ["logSharpness", "detScore"] as const;

/**
 * How likely this face is to be recognised (0–1): a calibrated probability, so 0.5 reads "as likely missed as
 * matched", which is what the match stage's trust rule and the track template's weights are built on.
 */
export function recognisability(s: QualityScores, model: RecognisabilityModel): number {
  const x = recognisabilityFeatures(s);
  let a = model.intercept;
  RECOGNISABILITY_TERMS.forEach((term, i) => (a += model[term] * x[i]!));
  return 1 / (1 + Math.exp(-a));
}
