import { describe, expect, it } from "vitest";
import { loadVision } from "../lib/vision/inference/vision.ts";
import { runAliceScene, testConfig } from "./helpers.ts";

// `vigil run` with the GPU's detection path (models.gpu.batchedDetect) forced on, on the CPU provider: frames
// batched across the stage go through one detector run each, in the vision worker threads as in production.
describe("vigil run with batched detection (always runs)", () => {
  it("alerts on a watchlisted person in a video made from photos", async () => {
    const config = testConfig({
      "ingest.fps": 5,
      "models.gpu.batchedDetect": "on",
      "models.gpu.detectBatch": 4,
    });
    expect(config.models.inferenceWorkers).toBe(true);
    const vision = await loadVision(config);
    expect(vision.analyzer.detectBatch).toBe(4);
    // The watchlist photo is cropped by the one-frame path (enrolment's), as in every other run.
    const { summary, alerts } = await runAliceScene(config, vision, [1, 0, 2]);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ personId: "alice", cameraId: "cam-1" });
    expect(summary.frames).toBeGreaterThanOrEqual(16); // 3.6 s at 5 fps
    expect(summary.faces).toBeGreaterThan(5);
  });
});
