import { describe, expect, it } from "vitest";
import { testConfig } from "../../../test/helpers.ts";
import { loadVision } from "./vision.ts";
import { YuNetDetector } from "./detectors/yunet.ts";

describe("stand-in models (bench plumbing)", () => {
  it("find the asked number of faces in every frame and give fixed unit vectors, after the asked time", async () => {
    const config = testConfig();
    const vision = await loadVision({
      ...config,
      models: { ...config.models, standIn: { faces: 4, costMs: 30 } },
    });
    if (!(vision.detector instanceof YuNetDetector)) {
      console.log(
        `skipping the stand-in check: the pack's detector is ${vision.detector.modelId}, not YuNet`,
      );
      return;
    }
    for (const [width, height] of [
      [1280, 720],
      [1920, 1080],
      [1280, 960],
    ] as const) {
      // A flat grey frame: the real model would find nothing in it.
      const frame = {
        format: "yuv420p" as const,
        width,
        height,
        data: new Uint8Array((width * height * 3) / 2).fill(128),
      };
      await vision.analyzer.analyze(frame); // opens the frame-input graph for this size
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      const faces = await vision.analyzer.analyze(frame);
      const cpu = process.cpuUsage(cpu0);
      const wall = performance.now() - t0;
      expect(wall).toBeGreaterThanOrEqual(29);
      // The wait holds the thread without burning it: far less CPU than wall time went by.
      expect((cpu.user + cpu.system) / 1000).toBeLessThan(wall / 2);
      expect(faces).toHaveLength(4);
      for (const f of faces) {
        expect(f.detection.box.x).toBeGreaterThanOrEqual(0);
        expect(f.detection.box.x + f.detection.box.width).toBeLessThanOrEqual(width);
        expect(f.crop.width).toBe(vision.embedder.width);
      }
      const vectors = await vision.embedder.embed(faces.map((f) => f.crop));
      expect(vectors).toHaveLength(4);
      for (const v of vectors) {
        expect(v).toHaveLength(vision.embedder.dim);
        expect(Math.hypot(...v)).toBeCloseTo(1, 5);
        expect(Array.from(v)).toEqual(Array.from(vectors[0]!));
      }
    }
  });
});
