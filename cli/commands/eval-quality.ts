import { mkdirSync } from "node:fs";
import path from "node:path";
import type { Config } from "../../lib/config/index.ts";
import { writeChartPng } from "../../lib/eval/plot.ts";
import { evaluateQuality, REJECT_STEPS, type QualityReport } from "../../lib/eval/quality.ts";
import {
  embedderInfo,
  recognisabilityTarget,
  saveRecognisability,
  thresholdFor,
} from "../../lib/vision/models/calibration.ts";
import { progress } from "../../lib/telemetry/progress.ts";
import { UsageError, visionFor } from "../context.ts";

export interface EvalQualityOptions {
  images: string;
  pairs: string;
  seed: number;
  png?: string;
  json?: boolean;
  /** Use the coefficients fitted on this run, not the registry's (to calibrate a new model). */
  refit?: boolean;
  /** Keep the fitted coefficients for a declared embedder or a trained head (`recognisabilityFor` reads them). */
  save?: boolean;
}

export async function evalQualityCommand(config: Config, opts: EvalQualityOptions): Promise<QualityReport> {
  if (!Number.isInteger(opts.seed)) throw new UsageError(`--seed must be an integer, not ${opts.seed}`);
  const vision = await visionFor(config);
  const modelId = vision.embedder.modelId;
  const embedder = embedderInfo(modelId, config);
  // Where --save would write, said before minutes of evaluation rather than after.
  if (opts.save) recognisabilityTarget(modelId, config);
  const refit = opts.refit || opts.save;
  const report = await evaluateQuality(vision, opts.images, opts.pairs, {
    threshold: thresholdFor(modelId, config),
    seed: opts.seed,
    registry: refit ? undefined : embedder.recognisability,
    onProgress: (phase, total) => progress(phase, total),
  });
  const saved =
    opts.save &&
    saveRecognisability(config, {
      modelId,
      recognisability: report.fitted,
      threshold: report.threshold,
      samples: report.samples,
      heldOutAuc: report.heldOutAuc,
      images: path.resolve(opts.images),
    });
  if (opts.png) {
    mkdirSync(path.dirname(path.resolve(opts.png)), { recursive: true });
    await writeChartPng(
      report.evrc.map((set) => ({
        title: `${set.name} (${set.genuinePairs})`,
        xLabel: "poorest comparisons rejected",
        yLabel: `FNMR at threshold ${report.threshold.toFixed(3)}`,
        x: REJECT_STEPS,
        series: set.curves.map((c) => ({ name: c.measure, y: c.fnmr })),
      })),
      opts.png,
    );
  }
  if (opts.json) {
    console.log(JSON.stringify(saved ? { ...report, saved } : report));
    return report;
  }
  const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
  console.log(
    `recognisability of ${report.embedder} at threshold ${report.threshold.toFixed(4)}: ${report.samples} faces against their identity's first image (as stored and surveillance-degraded, seed ${report.seed})`,
  );
  console.log(`fitted coefficients (registry form): ${JSON.stringify(report.fitted)}`);
  console.log(
    `held-out AUC (fitted on one half of the identities, tested on the other): ${report.heldOutAuc.map((a) => a.toFixed(3)).join(", ")}`,
  );
  console.log(
    `curves and bins use the ${report.using} coefficients${!refit && embedder.noRecognisability ? ` (${embedder.noRecognisability})` : ""}`,
  );
  for (const set of report.evrc) {
    console.log(
      `error versus reject, ${set.name}, ${set.genuinePairs} genuine pairs (FNMR after rejecting 0 / 10 / 20 / 30 %):`,
    );
    for (const c of set.curves) {
      const at = (f: number) => pct(c.fnmr[REJECT_STEPS.indexOf(f)]!);
      console.log(`  ${c.measure.padEnd(22)} ${at(0)} / ${at(0.1)} / ${at(0.2)} / ${at(0.3)}`);
    }
  }
  console.log(
    "by recognisability of the poorer face (impostors: every face against other identities' first image):",
  );
  for (const b of report.bins) {
    console.log(
      `  [${b.from.toFixed(2)}, ${b.to.toFixed(2)}): ${String(b.faces).padStart(5)} faces, ${pct(b.recognised)} recognised; FAR at the threshold ${b.far.toExponential(2)} over ${b.impostorPairs} impostor pairs`,
    );
  }
  if (opts.png) console.log(`wrote ${opts.png}`);
  if (saved)
    console.log(`saved ${modelId}'s recognisability to ${saved}: the match stage weighs its looks by it`);
  console.log(`${report.seconds.toFixed(0)} s`);
  return report;
}
