import { symlinkSync, utimesSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { benchVision } from "../cli/commands/bench-vision.ts";
import { evalThresholdCommand } from "../cli/commands/eval-threshold.ts";
import { evalWatchlistCommand } from "../cli/commands/eval-watchlist.ts";
import { trainCommand } from "../cli/commands/train.ts";
import { loadVision } from "../lib/vision/inference/vision.ts";
import { MODELS } from "../lib/vision/models/registry.ts";
import {
  assertPackCalibrated,
  embedderInfo,
  recognisabilityFile,
  recognisabilityFor,
  saveRecognisability,
} from "../lib/vision/models/calibration.ts";
import { loadHead } from "../lib/vision/models/heads.ts";
import { cacheWithBaseModels, lfwSubset } from "./head-helpers.ts";
import { sharedData, skipReason, tempDir, testConfig } from "./helpers.ts";

const lfw = sharedData("lfw-dev", "images");
const bbt = sharedData("faces-bbt");
const missing =
  !lfw || !bbt
    ? skipReason(
        "evaluations with a trained head",
        "../shared/data/lfw-dev/images and ../shared/data/faces-bbt",
      )
    : undefined;

describe.skipIf(!!missing)("evaluations and benches with models.head set (real models)", () => {
  it("eval threshold, eval watchlist and bench vision give figures for a trained head, with its calibration", async () => {
    const cacheDir = cacheWithBaseModels();
    const config = testConfig({ "models.cacheDir": cacheDir, dataDir: tempDir() });
    const id = "reid-0095+softmax-eval";
    await trainCommand(config, {
      data: lfwSubset(lfw!, 12),
      loss: "softmax",
      epochs: 1,
      out: id,
      json: true,
    });
    const withHead = testConfig({ "models.cacheDir": cacheDir, dataDir: tempDir(), "models.head": id });
    const head = loadHead(cacheDir, id).manifest;

    // The one place that says what the running embedder is: the head's calibration, its base's input.
    const info = embedderInfo(id, withHead);
    expect(info).toMatchObject({ modelId: id, calibration: head.calibration, calibratedIn: "head manifest" });
    expect(info.spec.id).toBe("reid-0095");
    expect(info.recognisability).toBeUndefined();
    expect(info.noRecognisability).toMatch(
      /reid-0095\+softmax-eval is a trained head .* no recognisability model .*vigil eval quality/,
    );
    expect(embedderInfo("reid-0095", withHead).calibration?.threshold).toBe(
      MODELS["reid-0095"]!.calibration!.threshold,
    );

    const vision = await loadVision(withHead);
    expect(vision.embedder.modelId).toBe(id);
    // eval threshold over one small collection (faces-bbt), at the head's own calibrated FAR.
    const data = tempDir("vigil-eval-data-");
    symlinkSync(bbt!, path.join(data, "faces-bbt"));
    const threshold = await evalThresholdCommand(withHead, { data, demo: false, json: true });
    expect(threshold.registryThreshold).toBe(head.calibration.threshold);
    expect(threshold.far).toBe(head.calibration.far);
    expect(threshold.collections.map((c) => c.name)).toEqual(["faces-bbt"]);
    expect(threshold.collections[0]!.impostorPairs).toBeGreaterThan(100);
    expect(threshold.threshold).toBeGreaterThan(-1);
    expect(threshold.threshold).toBeLessThan(1);

    // eval watchlist: the head's threshold in the rule, every look trusted (a head has no recognisability model).
    const watchlist = await evalWatchlistCommand(withHead, {
      images: bbt!,
      degrade: "none",
      seed: 1,
      json: true,
    });
    expect(watchlist.embedder).toBe(id);
    expect(watchlist.rule).toMatchObject({ threshold: head.calibration.threshold, recognisability: false });
    expect(watchlist.enrolled).toBeGreaterThan(0);
    expect(watchlist.single.searches).toBeGreaterThan(0);
    expect(watchlist.single.rank1).toBeGreaterThan(0);

    // Fitted for the head (what `vigil eval quality --save` keeps), it is found under the head's weights from then on.
    const fitted = { intercept: -5, logSharpness: 1.5, detScore: 2 };
    const saved = saveRecognisability(withHead, {
      modelId: id,
      recognisability: fitted,
      threshold: head.calibration.threshold,
      samples: 1,
      heldOutAuc: [],
      images: bbt!,
    });
    expect(saved).toBe(recognisabilityFile(withHead, head.weights.sha256));
    expect(embedderInfo(id, withHead).recognisability).toEqual(fitted);
    expect(embedderInfo(id, withHead).noRecognisability).toBeUndefined();
    expect(recognisabilityFor(id, withHead)).toEqual(fitted);
    expect(recognisabilityFor(id)).toBeUndefined();
    // A damaged file would silently trust every look: the match service refuses to start on it, saying why.
    writeFileSync(saved, "{ damaged");
    utimesSync(saved, new Date(), new Date(Date.now() + 5000));
    expect(recognisabilityFor(id, withHead)).toBeUndefined();
    expect(() => assertPackCalibrated(withHead)).toThrow(/recognisability cannot be used .*unreadable/);

    // bench vision times the base model that runs under the head.
    const bench = await benchVision(withHead, vision, 2);
    expect(bench).toMatchObject({ embedder: id, embedModel: "reid-0095" });
    expect(bench.embedMsBatch1).toBeGreaterThan(0);
  }, 600_000);
});
