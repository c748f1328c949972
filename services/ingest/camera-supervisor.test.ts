import { execFileSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../lib/config/index.ts";
import { CameraStatusContract, FrameContract, Topics } from "../../lib/contracts/index.ts";
import { nvidiaGpu } from "../../lib/vision/inference/gpu-host.ts";
import type { Emit } from "../../lib/runtime/stage.ts";
import { tempDir } from "../../test/helpers.ts";
import { CameraSupervisor } from "./camera-supervisor.ts";
import { resolveCamera } from "./camera.ts";

describe("camera supervisor with hwaccel", () => {
  it("falls back to software decoding for that camera when the hardware decoder fails, and still delivers", async () => {
    const file = path.join(tempDir(), "clip.mp4");
    execFileSync("ffmpeg", [
      "-loglevel",
      "error",
      "-f",
      "lavfi",
      "-i",
      "testsrc2=size=640x360:rate=25",
      "-t",
      "2",
      "-pix_fmt",
      "yuv420p",
      file,
    ]);
    const ingest = loadConfig({ env: {} }).ingest;
    const camera = resolveCamera({ id: "door", url: file, hwaccel: "cuda", loop: false }, ingest);
    const frames: number[] = [];
    const states: { state: string; lastError: string | null }[] = [];
    const emit = async (e: Emit) => {
      if (e.topic === Topics.frames) frames.push(FrameContract.decode(e.value).width);
      if (e.topic === Topics.cameraStatus) {
        const s = CameraStatusContract.decode(e.value);
        states.push({ state: s.state, lastError: s.lastError });
      }
    };
    const warnings: string[] = [];
    const supervisor = new CameraSupervisor(camera, emit, ingest, Date.now, Math.random, (m) =>
      warnings.push(m),
    );
    const final = await supervisor.run();
    expect(final.state).toBe("ended");
    // 2 s at the default 5 fps, whichever decoder made them.
    expect(frames.length).toBe(10);
    expect(new Set(frames)).toEqual(new Set([640]));
    if (nvidiaGpu()) {
      expect(supervisor.hwaccelFallback()).toBeUndefined();
    } else {
      expect(supervisor.hwaccelFallback()).toMatch(
        /^hwaccel cuda failed \(.*(device|cuda).*\); decoding in software$/i,
      );
      expect(warnings).toEqual([`camera door: ${supervisor.hwaccelFallback()}`]);
      // The reason is published with the camera's status, not only logged; it is no reconnect.
      expect(states.some((s) => s.lastError === supervisor.hwaccelFallback())).toBe(true);
      expect(final.reconnects).toBe(0);
    }
  });
});
