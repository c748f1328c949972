import { existsSync } from "node:fs";
import path from "node:path";
import type { Config } from "../../lib/config/index.ts";
import {
  chooseOperatingPoint,
  demoCollection,
  folderCollection,
  labelledPairsCollection,
  liveDecision,
  photoGate,
  type Collection,
  type OperatingPointReport,
} from "../../lib/eval/collections.ts";
import { embedderInfo, minTrustFor } from "../../lib/vision/models/calibration.ts";
import { progress } from "../../lib/telemetry/progress.ts";
import { UsageError, visionFor } from "../context.ts";

export interface EvalThresholdOptions {
  /** The development data folder holding lfw-dev/, deepface-pairs/ and faces-bbt/. */
  data?: string;
  far?: number;
  demo: boolean;
  /** Which faces count: live video's decisions (default) or only faces passing the photo gate. */
  gate?: string;
  json?: boolean;
}

/**
 * The operating point over several collections' impostor pairs: the registry's threshold should be the one
 * printed here, so that no collection exceeds the target false-match rate.
 */
export async function evalThresholdCommand(
  config: Config,
  opts: EvalThresholdOptions,
): Promise<OperatingPointReport & { gate: string; missing: string[]; registryThreshold?: number }> {
  const data = path.resolve(opts.data ?? process.env.VIGIL_SHARED_DATA ?? "../shared/data");
  const vision = await visionFor(config);
  // A trained head's or a declared pack's calibration, like a built-in model's.
  const embedder = embedderInfo(vision.embedder.modelId, config);
  const far = opts.far ?? embedder.calibration?.far ?? 1e-4;
  if (!(far > 0 && far < 1)) throw new UsageError(`--far must be between 0 and 1, not ${far}`);
  const gate = opts.gate ?? "live";
  if (gate !== "live" && gate !== "photo") throw new UsageError(`--gate must be live or photo, not ${gate}`);
  const decidable =
    gate === "live"
      ? liveDecision(embedder.recognisability, minTrustFor(vision.embedder.modelId, config))
      : photoGate;
  const collections: Collection[] = [];
  const missing: string[] = [];
  const bar = (phase: string, total: number) => progress(phase, total);
  const lfw = path.join(data, "lfw-dev", "images");
  if (existsSync(lfw)) collections.push(await folderCollection(vision, "LFW dev", lfw, bar, decidable));
  else missing.push(lfw);
  const deepface = path.join(data, "deepface-pairs");
  if (existsSync(path.join(deepface, "master.csv")))
    collections.push(
      await labelledPairsCollection(
        vision,
        "deepface-pairs",
        deepface,
        [
          "master.csv",
          ...(existsSync(path.join(deepface, "face-recognition-pivot.csv"))
            ? ["face-recognition-pivot.csv"]
            : []),
        ],
        decidable,
      ),
    );
  else missing.push(deepface);
  const bbt = path.join(data, "faces-bbt");
  if (existsSync(bbt)) collections.push(await folderCollection(vision, "faces-bbt", bbt, bar, decidable));
  else missing.push(bbt);
  if (opts.demo) collections.push(await demoCollection(vision, config.dataDir, decidable));
  if (collections.length === 0) throw new UsageError(`no collection found under ${data}`);

  const report = {
    ...chooseOperatingPoint(collections, far),
    gate,
    missing,
    registryThreshold: embedder.calibration?.threshold,
  };
  if (opts.json) {
    console.log(JSON.stringify(report));
    return report;
  }
  console.log(
    `operating point for ${vision.embedder.modelId} at FAR ${far} over the faces ${gate === "live" ? "live video decides on" : "passing the photo gate"}: threshold ${report.threshold.toFixed(4)} (the ${embedder.calibratedIn} has ${report.registryThreshold?.toFixed(4) ?? "none"})`,
  );
  for (const c of report.collections) {
    console.log(
      `  ${c.name.padEnd(15)} ${String(c.faces).padStart(5)} faces, ${String(c.impostorPairs).padStart(8)} impostor pairs: own threshold ${c.thresholdAtFar.toFixed(4)}${c.measurable ? "" : " (normal tail: too few pairs to measure the rate)"}; FAR at the chosen one ${c.farAtChosen.toExponential(2)} (${c.falseMatchesAtChosen}); highest impostor ${c.top[0] ? `${c.top[0].score.toFixed(4)} (${c.top[0].a} / ${c.top[0].b})` : "—"}${c.skipped.length ? `; ${c.skipped.length} left out (no face decided on)` : ""}`,
    );
  }
  for (const m of missing) console.log(`  not found, left out: ${m}`);
  return report;
}
