import { describe, expect, it } from "vitest";
import { benchE2e, benchE2eMaxCameras } from "../cli/commands/bench-e2e.ts";
import { benchChildren } from "./bench-helpers.ts";
import { sharedVision, testConfig } from "./helpers.ts";

// The figures themselves are the bench command's to print (`vigil bench e2e --max-cameras`); these check that a
// run measures what it says, on a ramp small enough for a shared 2-core machine. No timing threshold here.
describe("vigil bench e2e --max-cameras", () => {
  it(
    "ramps 1 then 2 cameras and sets the passing count against the model-bound count",
    { timeout: 300_000 },
    async () => {
      const config = testConfig();
      const r = await benchE2eMaxCameras(config, await sharedVision(), {
        cameraFps: 25,
        limit: 2,
        step: 1,
        stepSeconds: 3,
      });
      console.log(JSON.stringify(r));
      expect(r.steps.length).toBeGreaterThanOrEqual(1);
      expect(r.steps.map((s) => s.cameras)).toEqual([1, 2].slice(0, r.steps.length));
      for (const s of r.steps) {
        expect(s.framesOffered).toBeGreaterThan(0);
        expect(s.framesProcessed).toBeGreaterThan(0);
        expect(s.processedRatio).toBeCloseTo(s.framesProcessed / s.framesOffered, 9);
        expect(s.seconds).toBeGreaterThan(2);
        expect(s.decodeCpuMsPerFrame).toBeGreaterThan(0);
        // Vigil's process runs the detector on every processed frame, so it spends at least a share of that.
        expect(s.vigilCpuMsPerFrame).toBeGreaterThan(0);
        expect(s.cameraServerCores).toBeGreaterThan(0);
        expect(s.faces).toBeGreaterThan(0);
        expect(s.latencyBasis).toBe(s.alerts > 0 ? "alert" : "face");
        expect(s.latencyMs).toBe(s.alerts > 0 ? s.p95AlertMs : s.p95FaceMs);
        expect(Number.isFinite(s.latencyMs)).toBe(true);
        expect(s.pass).toBe(s.processedRatio >= 0.99 && s.latencyMs <= 1000);
      }
      // The ramp stops at its first failure, so only its last step may have failed.
      expect(r.steps.slice(0, -1).every((s) => s.pass)).toBe(true);
      const passed = r.steps.filter((s) => s.pass).map((s) => s.cameras);
      expect(r.maxCameras).toBe(passed.length ? Math.max(...passed) : 0);
      expect(r.maxCameras).toBeLessThanOrEqual(Math.max(...r.steps.map((s) => s.cameras)));
      expect(r.firstFailure).toBe(r.steps.find((s) => !s.pass)?.cameras ?? null);

      expect(r.model.frames).toBeGreaterThan(0);
      expect(r.model.facesPerFrame).toBeGreaterThan(0);
      expect(r.model.detectMs).toBeGreaterThan(0);
      expect(r.model.embedMsPerFace).toBeGreaterThan(0);
      expect(r.decodeMsPerFrame).toBe(r.steps[0]!.decodeCpuMsPerFrame);
      const processed = r.steps.reduce((n, s) => n + s.framesProcessed, 0);
      expect(r.embeddedFacesPerFrame).toBeCloseTo(r.steps.reduce((n, s) => n + s.embedded, 0) / processed, 9);
      expect(r.modelMsPerFrame).toBeCloseTo(
        r.model.detectMs + r.model.embedMsPerFace * r.embeddedFacesPerFrame + r.decodeMsPerFrame,
        9,
      );
      expect(r.modelBoundCameras).toBeGreaterThan(0);
      expect(r.modelBoundCameras).toBe(Math.floor((r.cores * 1000) / (r.fps * r.modelMsPerFrame)));
      expect(r.ratio).toBeCloseTo(r.maxCameras / r.modelBoundCameras, 9);
      expect(r.goal).toContain("0.8");
      const basis = r.steps.filter((s) => s.pass).at(-1) ?? r.steps[0]!;
      expect(r.atMax.cameras).toBe(basis.cameras);
      expect(r.atMax.overheadMsPerFrame).toBeCloseTo(
        basis.vigilCpuMsPerFrame - r.model.detectMs - r.model.embedMsPerFace * r.embeddedFacesPerFrame,
        9,
      );
      expect(r.modelBoundCamerasBesideCameraServer).toBe(
        Math.floor(((r.cores - basis.cameraServerCores) * 1000) / (r.fps * r.modelMsPerFrame)),
      );
      expect(r.loadAverage.end).toBeGreaterThanOrEqual(0);
      // Every step's cameras and RTSP server are gone.
      expect(benchChildren()).toEqual([]);
    },
  );

  it("keeps the fixed-count run: one camera's frames processed, latencies timed", async () => {
    const r = await benchE2e(testConfig(), await sharedVision(), 1, 4, { cameraFps: 25 });
    console.log(JSON.stringify(r));
    expect(r.cameras).toBe(1);
    expect(r.synchronized).toBe(false);
    expect(r.framesOffered).toBeGreaterThan(0);
    expect(r.processedRatio).toBeCloseTo(r.framesProcessed / r.framesOffered, 9);
    expect(r.facesPerSecond).toBeGreaterThan(0);
    expect(Number.isFinite(r.p95FaceMs)).toBe(true);
    expect(benchChildren()).toEqual([]);
  });
});
