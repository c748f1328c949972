import { writeFileSync } from "node:fs";
import type { Config } from "../../lib/config/index.ts";
import type { Degradation } from "../../lib/eval/degrade.ts";
import { evaluateWatchlist, type DecisionFigures, type WatchlistReport } from "../../lib/eval/watchlist.ts";
import { embedderInfo, minTrustFor, thresholdFor } from "../../lib/vision/models/calibration.ts";
import { progress } from "../../lib/telemetry/progress.ts";
import { UsageError, visionFor } from "../context.ts";

export interface EvalWatchlistOptions {
  images: string;
  degrade: string;
  seed: number;
  json?: boolean;
  out?: string;
}

export async function evalWatchlistCommand(
  config: Config,
  opts: EvalWatchlistOptions,
): Promise<WatchlistReport> {
  if (opts.degrade !== "none" && opts.degrade !== "surveillance")
    throw new UsageError(`--degrade must be none or surveillance, not ${opts.degrade}`);
  if (!Number.isInteger(opts.seed)) throw new UsageError(`--seed must be an integer, not ${opts.seed}`);
  const vision = await visionFor(config);
  const modelId = vision.embedder.modelId;
  const embedder = embedderInfo(modelId, config);
  const report = await evaluateWatchlist(vision, opts.images, {
    degrade: opts.degrade as Degradation,
    seed: opts.seed,
    rule: { threshold: thresholdFor(modelId, config), minTrust: minTrustFor(modelId, config) },
    recognisability: embedder.recognisability,
    onProgress: (phase, total) => progress(phase, total),
  });
  if (opts.out) writeFileSync(opts.out, JSON.stringify(report, null, 2));
  if (opts.json) console.log(JSON.stringify(report));
  else printReport(report, embedder.noRecognisability);
  return report;
}

const pct = (v: number) => `${(v * 100).toFixed(1)}%`;

function line(label: string, f: DecisionFigures) {
  const at = (p: DecisionFigures["at1e2"]) =>
    `${pct(p.fnir)} (threshold ${p.threshold.toFixed(4)}, FPIR ${(p.achievedFpir * 100).toFixed(2)}%)`;
  console.log(
    `${label.padEnd(22)} FNIR @ FPIR 1%: ${at(f.at1e2)}; @ 0.1%: ${at(f.at1e3)}; rank-1 ${pct(f.rank1)} — ${f.searches} mated / ${f.nonMatedSearches} non-mated`,
  );
}

function printReport(r: WatchlistReport, noRecognisability: string | undefined) {
  console.log(
    `watchlist (open-set 1:N), pack ${r.pack} (${r.embedder}); probes degraded: ${r.degrade}${r.degrade === "none" ? "" : ` (seed ${r.seed})`}`,
  );
  console.log(
    `${r.identities} identities, ${r.enrolled} enrolled; ${r.matedProbes} mated and ${r.nonMatedProbes} non-mated probes; no face found in ${r.noFace.mated} mated / ${r.noFace.nonMated} non-mated probes; ${r.belowQualityGate} below the photo quality gate (weak looks), ${r.belowLiveGate} below live video's (never a look)`,
  );
  if (r.degrade !== "none")
    console.log(
      `probe scales drawn: ${Object.entries(r.scales)
        .sort((a, b) => Number(b[0]) - Number(a[0]))
        .map(([s, n]) => `${s === "1" ? "kept" : `${Math.round(Number(s) * 100)}%`} ${n}`)
        .join(", ")}`,
    );
  line("single image", r.single);
  line("single, trust rule", r.singleWithRule);
  line(`tracks of ≤ 4 looks`, r.track);
  console.log(
    `single images by sharpness, at FPIR 1 %: ${r.bySharpness
      .map(
        (b) =>
          `${b.sharpness}: ${b.matedFound}/${b.mated} mated found, ${b.nonMatedAlerting}/${b.nonMated} strangers alerting`,
      )
      .join("; ")}`,
  );
  if (r.degrade !== "none") {
    const scale = (v: number) => (v === 1 ? "kept" : v === 0 ? "no look" : `${Math.round(v * 100)}%`);
    console.log(
      `single images by scale, at FPIR 1 %: ${r.byScale
        .map(
          (b) =>
            `${scale(b.scale)}: ${b.matedFound}/${b.mated} mated found, ${b.nonMatedAlerting}/${b.nonMated} strangers alerting`,
        )
        .join("; ")}`,
    );
    console.log(
      `mated tracks by their best look, found at FPIR 1 %: ${r.tracksByBestLook
        .map((b) => `${scale(b.bestScale)}: ${b.found}/${b.tracks}`)
        .join("; ")}`,
    );
    if (r.trackFnirIfScaleDecides !== undefined)
      console.log(
        `track FNIR if scale alone decided (every track with a look at a scale found alone at least half the time found, no other): ${pct(r.trackFnirIfScaleDecides)}`,
      );
  }
  console.log(
    `rule: min trust ${r.rule.minTrust}${r.rule.recognisability ? "" : ` (${noRecognisability ?? "no recognisability calibration"}; every look trusted)`}; thresholds above are set on the non-mated scores; the calibrated threshold is ${r.rule.threshold.toFixed(4)}; ${r.seconds.toFixed(0)} s`,
  );
}
