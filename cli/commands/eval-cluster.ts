import type { Config } from "../../lib/config/index.ts";
import { evaluateCluster } from "../../lib/eval/cluster.ts";
import { progress } from "../../lib/telemetry/progress.ts";
import { unknownThresholdFor } from "../../lib/identities/threshold.ts";
import { UsageError, visionFor } from "../context.ts";

export interface EvalClusterOptions {
  images: string;
  seed: number;
  minImages: number;
  threshold?: number;
  json?: boolean;
}

/** `vigil eval cluster`: online unknown-identity assignment on a folder-per-identity set, scored with BCubed. */
export async function evalClusterCommand(config: Config, opts: EvalClusterOptions) {
  if (!Number.isInteger(opts.seed)) throw new UsageError(`--seed must be a whole number, got ${opts.seed}`);
  if (!(Number.isInteger(opts.minImages) && opts.minImages >= 1))
    throw new UsageError(`--min-images must be a whole number ≥ 1, got ${opts.minImages}`);
  const vision = await visionFor(config);
  // What live assignment uses (identities.threshold, else the model's calibrated same-person threshold).
  const threshold = opts.threshold ?? unknownThresholdFor(vision.embedder.modelId, config);
  const r = await evaluateCluster(
    vision,
    opts.images,
    { seed: opts.seed, minImages: opts.minImages, threshold },
    (phase, total) => progress(phase, total),
  );
  if (opts.json) {
    console.log(JSON.stringify(r));
    return r;
  }
  const pct = (v: number) => `${(v * 100).toFixed(2)}%`;
  console.log(
    `${r.images} faces of ${r.identitiesTrue} people (≥ ${r.minImages} images each) in random order (seed ${r.seed}); model ${r.modelId}, threshold ${r.threshold.toFixed(4)}`,
  );
  console.log(
    `BCubed precision ${pct(r.bcubedPrecision)}, recall ${pct(r.bcubedRecall)}, F1 ${pct(r.bcubedF1)}`,
  );
  console.log(
    `identities made ${r.identitiesMade} (true ${r.identitiesTrue}); ${r.mixedIdentities} hold more than one person`,
  );
  if (r.noFace.length > 0)
    console.log(`no face found in ${r.noFace.length} image(s): ${r.noFace.slice(0, 10).join(", ")}`);
  console.log(`${r.seconds.toFixed(0)} s`);
  return r;
}
