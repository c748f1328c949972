import path from "node:path";
import type { Config } from "../../lib/config/index.ts";
import { progress } from "../../lib/telemetry/progress.ts";
import { writeDistillData } from "../../lib/train/distill-data.ts";
import { loadBaseVision } from "../../lib/vision/inference/vision.ts";
import { logToStderr, UsageError } from "../context.ts";

export interface DistillDataOptions {
  images: string;
  out: string;
  variants: number;
  seed: number;
  limit?: number;
}

/**
 * `vigil train-data distill --images <dir> --out <dir>`: the clean and degraded crop pairs the offline
 * cross-resolution fine-tuning (`scripts/train-embedder/`) trains on, cut by the configured pack.
 */
export async function distillDataCommand(config: Config, opts: DistillDataOptions) {
  if (!Number.isInteger(opts.variants) || opts.variants < 1)
    throw new UsageError(`--variants must be a whole number ≥ 1; got ${opts.variants}`);
  if (opts.limit !== undefined && (!Number.isInteger(opts.limit) || opts.limit < 1))
    throw new UsageError(`--limit must be a whole number ≥ 1; got ${opts.limit}`);
  const vision = await loadBaseVision(config, logToStderr);
  const manifest = await writeDistillData(
    vision,
    path.resolve(opts.images),
    path.resolve(opts.out),
    { variants: opts.variants, seed: opts.seed, limit: opts.limit },
    (total) => progress("train-data distill", total),
  );
  console.log(
    `${manifest.photos.length} photos × ${manifest.perPhoto} crops (${manifest.width}×${manifest.height}, ${manifest.embedder}) in ${opts.out}; ${manifest.skipped.length} skipped (no face)`,
  );
  return manifest;
}
