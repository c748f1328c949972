import { describe, expect, it } from "vitest";
import { benchSoak, soakSampleLine } from "../cli/commands/bench-soak.ts";
import { benchChildren } from "./bench-helpers.ts";
import { sharedVision, testConfig } from "./helpers.ts";

// The 2-minute version of `vigil bench soak` (the command's default is 30): two cameras rather than eight keep
// a shared 2-core machine usable while it runs; what is checked (one sample a minute, a decoder per camera
// throughout, bounded handles, frames flowing, nothing left running) does not depend on the count.
describe("vigil bench soak", () => {
  it("samples every minute with a decoder per camera, frames flowing, and leaves nothing running", async () => {
    const cameras = 2;
    const r = await benchSoak(testConfig(), await sharedVision(), {
      minutes: 2,
      cameras,
      cameraFps: 25,
      onSample: (s, of) => console.log(soakSampleLine(s, of)),
    });
    expect(r.samples.map((s) => s.minute)).toEqual([0, 1, 2]);
    for (const s of r.samples) {
      expect(s.ffmpegChildren).toBe(cameras);
      expect(s.camerasLive).toBe(cameras);
      expect(s.children["ffmpeg (zombie)"]).toBeUndefined();
      expect(s.children["python3"]).toBe(1); // the RTSP test server
      expect(s.rssMB).toBeGreaterThan(0);
      expect(s.heapUsedMB).toBeGreaterThan(0);
      expect(s.handles).toBe(Object.values(s.handlesByType).reduce((a, b) => a + b, 0));
    }
    // Sockets, pipes and processes are per camera and fixed; timers come and go. A leak of one per frame
    // would add thousands a minute, so twice the start is far above noise and far below any leak.
    const start = r.samples[0]!.handles;
    for (const s of r.samples) expect(s.handles).toBeLessThanOrEqual(2 * start);
    expect(r.framesFlowing).toBe(true);
    for (const s of r.samples.slice(1)) expect(s.framesProcessed).toBeGreaterThan(0);
    expect(r.framesProcessed).toBeGreaterThan(0);
    expect(r.processedRatio).toBeCloseTo(r.framesProcessed / r.framesOffered, 9);
    expect(r.warmupMinutes).toBe(1);
    expect(r.rssGrowthRatio).toBeCloseTo(
      (r.samples[2]!.rssMB - r.samples[1]!.rssMB) / r.samples[1]!.rssMB,
      9,
    );
    // Not asserted: one minute after a one-minute warm-up, JIT code and allocator arenas may still be settling,
    // and this machine is shared; the bound (≤ 0.05) is the full command's, over a longer run.
    console.log(`rssGrowthRatio ${r.rssGrowthRatio.toFixed(3)}, heap ${r.heapGrowthRatio.toFixed(3)}`);
    expect(r.kafkaConnections).toBeNull();
    expect(r.loadAverage.end).toBeGreaterThanOrEqual(0);
    expect(r.afterStop.ffmpegChildren).toBe(0);
    expect(r.afterStop.camerasRunning).toBe(0);
    expect(r.afterStop.children["python3"]).toBeUndefined();
    expect(benchChildren()).toEqual([]);
  }, 240_000);
});
