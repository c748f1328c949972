import type { Config } from "../../lib/config/index.ts";
import { calibrateModelPack, type CalibrateResult } from "../../lib/eval/calibrate-pack.ts";
import { progress } from "../../lib/telemetry/progress.ts";
import { logToStderr } from "../context.ts";

export interface CalibratePackOptions {
  images: string;
  pairs: string;
  folds?: number;
  far?: number;
  json?: boolean;
}

/**
 * `vigil eval lfw --calibrate [--pack <declared>] [--folds n] [--far f]`: measures a declared pack's operating
 * point on LFW and stores it, after which `vigil run` matches with the pack like with a built-in one.
 */
export async function calibratePackCommand(
  config: Config,
  opts: CalibratePackOptions,
): Promise<CalibrateResult> {
  const result = await calibrateModelPack(config, {
    images: opts.images,
    pairs: opts.pairs,
    folds: opts.folds,
    far: opts.far,
    onProgress: (phase, total) => progress(phase, total),
    log: logToStderr,
  });
  const { calibration: c, file, report } = result;
  if (opts.json) {
    console.log(JSON.stringify({ calibration: c, file, report }));
    return result;
  }
  const pct = (v: number) => `${(v * 100).toFixed(2)}%`;
  console.log(`pack ${c.pack}: embedder ${c.modelId} (sha256 ${c.sha256})`);
  console.log(`licence: ${c.licence}`);
  console.log(
    `LFW folds 1-${c.lfw.folds}: ${report.pairs} pairs, ${report.images} images, accuracy ${pct(report.accuracy)} ± ${pct(report.std)}, flip ${c.flip ? "on" : "off"}`,
  );
  console.log(
    `operating point: threshold ${c.threshold.toFixed(4)} at FAR ${c.far} over ${c.impostorPairs} cross-identity pairs ` +
      `(${report.calibration.map((p) => `FAR ${p.far} → ${p.threshold.toFixed(4)}`).join(", ")})`,
  );
  if (report.noFace.count) console.log(`no face detected in ${report.noFace.count} image(s)`);
  console.log(`written to ${file}; vigil run now matches with pack ${c.pack} at ${c.threshold.toFixed(4)}`);
  return result;
}
