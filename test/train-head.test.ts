import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { trainCommand } from "../cli/commands/train.ts";
import { modelCacheDir } from "../lib/config/index.ts";
import { listHeads, loadHead } from "../lib/vision/models/heads.ts";
import { thresholdFor } from "../lib/vision/models/calibration.ts";
import { loadVision } from "../lib/vision/inference/vision.ts";
import { cacheWithBaseModels, lfwSubset } from "./head-helpers.ts";
import { runAliceScene, sharedData, skipReason, tempDir, testConfig } from "./helpers.ts";

const lfw = sharedData("lfw-dev", "images");
const bbt = sharedData("faces-bbt");
const missing =
  !lfw || !bbt
    ? skipReason("trained-head end-to-end test", "../shared/data/lfw-dev/images and ../shared/data/faces-bbt")
    : undefined;

describe.skipIf(!!missing)("a trained head, from vigil train to an alert in vigil run (real models)", () => {
  it("trains on LFW identities, registers the head with a measured threshold, and vigil run alerts with it", async () => {
    const cacheDir = cacheWithBaseModels();
    const config = testConfig({ "ingest.fps": 5, "models.cacheDir": cacheDir, dataDir: tempDir() });
    const id = "reid-0095+am-softmax-test";
    const summary = await trainCommand(config, {
      data: lfwSubset(lfw!, 40),
      loss: "am-softmax",
      epochs: 6,
      batch: 64,
      out: id,
      calibrate: bbt,
      json: true,
    });
    // The run summary: every hyper-parameter and the data's counts, a curve, and the calibration's provenance.
    expect(summary).toMatchObject({ id, base: "reid-0095", loss: "am-softmax" });
    expect(summary.hyperParameters).toMatchObject({
      s: 30,
      m: 0.35,
      dim: 256,
      epochs: 6,
      batch: 64,
      weightDecay: 0,
    });
    expect(summary.data.identities).toBe(40);
    expect(summary.data.images).toBeGreaterThanOrEqual(160);
    expect(summary.split.valIdentities).toBeGreaterThanOrEqual(2);
    expect(existsSync(summary.plot)).toBe(true);
    expect(summary.calibration.far).toBe(1e-4);
    expect(summary.calibration.source).toMatch(/impostor pairs of \d+ held-out identities/);
    expect(summary.calibration.source).toMatch(/impostor pairs of \d+ identities of .*faces-bbt/);
    const head = loadHead(cacheDir, id);
    expect(head.manifest).toMatchObject({ base: "reid-0095", flip: true, loss: "am-softmax", dim: 256 });
    expect(listHeads(cacheDir).map((h) => h.id)).toEqual([id]);
    // The threshold the match stage uses is the head's own, not the base model's.
    const threshold = head.manifest.calibration.threshold;
    expect(thresholdFor(id, config)).toBe(threshold);
    expect(threshold).toBeGreaterThan(0);
    expect(threshold).toBeLessThan(1);

    // vigil run with models.head: the watchlist photo and live faces are embedded through the head.
    const withHead = { ...config, models: { ...config.models, head: id } };
    const vision = await loadVision(withHead);
    expect(vision.embedder.modelId).toBe(id);
    const { summary: run, alerts } = await runAliceScene(withHead, vision, [0, 1, 2]);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ personId: "alice", modelId: id, threshold });
    expect(alerts[0]!.score).toBeGreaterThanOrEqual(threshold);
    expect(run.threshold).toBe(threshold);
  });

  it("refuses a head on a base model or flip setting it was not trained with, and an unknown head, by name", async () => {
    const cacheDir = cacheWithBaseModels();
    const config = testConfig({ "models.cacheDir": cacheDir, dataDir: tempDir() });
    await trainCommand(config, {
      data: lfwSubset(lfw!, 12),
      loss: "softmax",
      epochs: 1,
      out: "tiny",
      json: true,
    });
    const withHead = (overrides: Record<string, unknown>) =>
      testConfig({ "models.cacheDir": cacheDir, "models.head": "tiny", ...overrides });
    // (the base models load from the linked cache whatever dataDir is)
    await expect(loadVision(withHead({ "embed.flip": false }))).rejects.toThrow(
      /head tiny was trained on reid-0095 \(flip on\); this process embeds with reid-0095 \(flip off\)/,
    );
    await expect(loadVision(withHead({ "models.pack": "faceplugin-npm" }))).rejects.toThrow(
      /head tiny was trained on reid-0095 .* this process embeds with mobilefacenet-faceplugin/,
    );
    await expect(loadVision(withHead({ "models.head": "nope" }))).rejects.toThrow(
      /no trained head nope .*known: tiny/,
    );
    await expect(trainCommand(config, { data: lfwSubset(lfw!, 12), out: "tiny" })).rejects.toThrow(
      /already exists/,
    );
    expect(modelCacheDir(config)).toBe(cacheDir);
  });
});
