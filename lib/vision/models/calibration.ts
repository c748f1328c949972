import type { Config } from "../../config/index.ts";
import { modelSpec } from "./registry.ts";

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
