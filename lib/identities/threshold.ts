import type { Config } from "../config/index.ts";
import { thresholdFor } from "../vision/models/calibration.ts";
import { checkThreshold } from "./clusterer.ts";

/**
 * The similarity at which a sighting joins an unknown identity: `identities.threshold`, else the model's
 * calibrated same-person threshold — what `vigil eval cluster` measures with, so live assignment runs at the
 * operating point the figures describe.
 */
export function unknownThresholdFor(modelId: string, config: Config): number {
  return checkThreshold(config.identities.threshold ?? thresholdFor(modelId, config));
}
