import path from "node:path";
import { describe, expect, it } from "vitest";
import { runEmbedded } from "../cli/commands/run.ts";
import { cropLargestFace, samplePhotos, slideshowVideo } from "../lib/media/sample-media.ts";
import { loadVision } from "../lib/vision/inference/vision.ts";
import { collect, ofType, sharedVision, tempDir, testConfig } from "./helpers.ts";

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
    const dir = tempDir();
    const photos = await samplePhotos(path.resolve(".vigil/cache"));
    const video = path.join(dir, "slideshow.mp4");
    await slideshowVideo([photos[1]!, photos[0]!, photos[2]!], video, {
      secondsEach: 1.2,
      width: 960,
      height: 540,
    });
    // The watchlist photo is cropped by the one-frame path (enrolment's), as in every other run.
    await cropLargestFace(await sharedVision(), photos[0]!, path.join(dir, "watchlist", "alice", "face.jpg"));
    const { events, emit } = collect();
    const { summary } = await runEmbedded(
      config,
      vision,
      { source: [video], watchlist: path.join(dir, "watchlist"), events: "ndjson" },
      emit,
    );
    expect(ofType(events, "enrol")).toEqual([expect.objectContaining({ personId: "alice", ok: true })]);
    const alerts = ofType(events, "alert");
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ personId: "alice", cameraId: "cam-1" });
    expect(summary.frames).toBeGreaterThanOrEqual(16); // 3.6 s at 5 fps
    expect(summary.faces).toBeGreaterThan(5);
  });
});
