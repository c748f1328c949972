import { describe, expect, it } from "vitest";
import { testConfig } from "../../../test/helpers.ts";
import { loadVision } from "./vision.ts";
import { YuNetDetector } from "./detectors/yunet.ts";

describe("stand-in models (bench plumbing)", () => {
  it("find the asked number of faces in every frame and give fixed unit vectors, after the asked time", async () => {
    const config = testConfig();
    const standIn = (costMs: number) =>
      loadVision({ ...config, models: { ...config.models, standIn: { faces: 4, costMs } } });
    const vision = await standIn(30);
    // The same work with no wait: what a frame costs around the stand-in (copying it into the run's input,
    // aligning four faces), so the wait's own CPU is the difference.
    const free = await standIn(0);
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
      // Each opens the frame-input graph for this size first.
      await vision.analyzer.analyze(frame);
      await free.analyzer.analyze(frame);
      const timed = async (v: typeof vision, runs: number) => {
        const t0 = performance.now();
        const cpu0 = process.cpuUsage();
        let faces: Awaited<ReturnType<typeof v.analyzer.analyze>> = [];
        for (let i = 0; i < runs; i++) faces = await v.analyzer.analyze(frame);
        const cpu = process.cpuUsage(cpu0);
        return { faces, wall: (performance.now() - t0) / runs, cpu: (cpu.user + cpu.system) / 1000 / runs };
      };
      // The wait holds the thread without burning it: of its 30 ms, far less than half is CPU. A loaded machine
      // can inflate one round's CPU (another thread's work lands in this process's count); a spinning wait would
      // burn its 30 ms in every round, so the least excess of up to three rounds tells the two apart.
      let waited = await timed(vision, 4);
      let base = await timed(free, 4);
      let excess = waited.cpu - base.cpu;
      for (let round = 1; round < 3 && excess >= 15; round++) {
        waited = await timed(vision, 4);
        base = await timed(free, 4);
        excess = Math.min(excess, waited.cpu - base.cpu);
      }
      const faces = waited.faces;
      expect(waited.wall).toBeGreaterThanOrEqual(29);
      expect(excess).toBeLessThan(15);
      expect(base.faces).toHaveLength(4);
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
