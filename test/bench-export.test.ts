import path from "node:path";
import { describe, expect, it } from "vitest";
import { benchExport } from "../cli/commands/bench-export.ts";
import { samplePhotos, slideshowVideo } from "../lib/media/sample-media.ts";
import { sharedVision, tempDir, testConfig } from "./helpers.ts";

describe("vigil bench export", () => {
  it("times a redacted export of given footage (--video), letterboxed to 720p and looped to the length asked", async () => {
    const vision = await sharedVision();
    const config = testConfig();
    const photos = await samplePhotos(path.resolve(".vigil/cache"));
    // Two groups one after the other at 960×540: people change, as in footage, and the clip is shorter than asked.
    const video = path.join(tempDir("vigil-bench-export-"), "two.mp4");
    await slideshowVideo([photos[0]!, photos[1]!], video, { secondsEach: 0.6, width: 960, height: 540 });
    const r = await benchExport(config, vision, 2, video);
    expect(r).toMatchObject({ width: 1280, height: 720, frames: 50, videoSeconds: 2, source: video });
    // The first frame's largest face is the person; the other group's faces are masked.
    expect(r.facesMasked).toBeGreaterThan(0);
    expect(r.cpuPerVideoSecond).toBeGreaterThan(0);
    expect(r.realTimePerCore).toBeCloseTo(1 / r.cpuPerVideoSecond, 6);
  }, 180_000);
});
