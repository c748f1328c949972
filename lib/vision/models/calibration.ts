import type { Config } from "../../config/index.ts";
import { MODELS, modelSpec } from "./registry.ts";
import {
  RECOGNISABILITY_TERMS,
  recognisabilityFeatures,
  type RecognisabilityModel,
} from "../pixels/quality.ts";
import type { QualityScores } from "../../contracts/index.ts";

/**
 * The match threshold for a model: the configured override, else the operating point calibrated for that model
 * (a target false-accept rate measured on impostor pairs), which the registry stores with the model id.
 */
export function thresholdFor(modelId: string, config: Config): number {
  if (config.match.threshold !== undefined) return config.match.threshold;
  const calibration = modelSpec(modelId).calibration;
  if (!calibration) throw new Error(`${modelId} has no calibrated threshold; set match.threshold`);
  return calibration.threshold;
}

/** The model's recognisability coefficients, when it has been calibrated for them (unknown ids: none). */
export function recognisabilityFor(modelId: string): RecognisabilityModel | undefined {
  return MODELS[modelId]?.calibration?.recognisability;
}

/**
 * Least trust a track needs to alert or be labelled: `match.minTrust`, else the model's calibrated value. A
 * model without a recognisability calibration trusts every look fully, so its value does not matter there.
 */
export function minTrustFor(modelId: string, config?: Pick<Config, "match">): number {
  return config?.match.minTrust ?? MODELS[modelId]?.calibration?.minTrust ?? DEFAULT_MIN_TRUST;
}

/** A look that would be recognised less than 1 time in 20 is no evidence of who it shows. */
export const DEFAULT_MIN_TRUST = 0.05;

export interface RecognisabilitySample {
  quality: QualityScores;
  /** Whether the face matched its own reference at the operating point. */
  recognised: boolean;
}

/**
 * Logistic regression of "recognised at the operating point" on the quality features (batch gradient descent
 * on standardised features, light L2), returned in raw feature units for the registry. Small and convex: the
 * same data always gives the same coefficients.
 */
export function fitRecognisability(
  samples: RecognisabilitySample[],
  iterations = 4000,
): RecognisabilityModel {
  if (samples.length === 0) throw new Error("no samples to fit recognisability on");
  const xs = samples.map((s) => recognisabilityFeatures(s.quality));
  const ys = samples.map((s) => (s.recognised ? 1 : 0));
  const d = xs[0]!.length;
  const mean = Array.from({ length: d }, (_, j) => xs.reduce((s, x) => s + x[j]!, 0) / xs.length);
  const sd = Array.from({ length: d }, (_, j) =>
    Math.max(1e-9, Math.sqrt(xs.reduce((s, x) => s + (x[j]! - mean[j]!) ** 2, 0) / xs.length)),
  );
  const zs = xs.map((x) => x.map((v, j) => (v - mean[j]!) / sd[j]!));
  const w = new Array<number>(d + 1).fill(0);
  for (let it = 0; it < iterations; it++) {
    const grad = new Array<number>(d + 1).fill(0);
    zs.forEach((z, i) => {
      let a = w[0]!;
      for (let j = 0; j < d; j++) a += w[j + 1]! * z[j]!;
      const e = 1 / (1 + Math.exp(-a)) - ys[i]!;
      grad[0]! += e;
      for (let j = 0; j < d; j++) grad[j + 1]! += e * z[j]!;
    });
    for (let j = 0; j <= d; j++) w[j]! -= 0.5 * (grad[j]! / zs.length + (j > 0 ? 1e-3 * w[j]! : 0));
  }
  const model = { intercept: w[0]! } as RecognisabilityModel;
  RECOGNISABILITY_TERMS.forEach((term, j) => {
    model[term] = w[j + 1]! / sd[j]!;
    model.intercept -= (w[j + 1]! * mean[j]!) / sd[j]!;
  });
  return model;
}
