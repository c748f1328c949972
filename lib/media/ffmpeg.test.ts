import { execFileSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { tempDir } from "../../test/helpers.ts";
import { yuv420Bytes } from "../vision/pixels/yuv.ts";
import { nvidiaGpu } from "../vision/inference/gpu-host.ts";
import { hwaccelFailure, startDecoder, type DecodedFrame } from "./ffmpeg.ts";

function testClip(seconds = 2): string {
  const file = path.join(tempDir(), "bars.mp4");
  execFileSync("ffmpeg", [
    "-loglevel",
    "error",
    "-f",
    "lavfi",
    "-i",
    `testsrc2=size=320x240:rate=10`,
    "-t",
    String(seconds),
    "-pix_fmt",
    "yuv420p",
    file,
  ]);
  return file;
}

describe("ffmpeg decoder", () => {
  it("gives yuv420p frames of the asked size, reusing only the buffers of released frames", async () => {
    const file = path.join(tempDir(), "bars.mp4");
    execFileSync(
      "ffmpeg",
      ["-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10", "-t", "2"].concat([
        "-pix_fmt",
        "yuv420p",
        file,
      ]),
    );
    // Odd sizes are made even: 4:2:0 chroma needs them.
    const decoder = startDecoder(file, { fps: 10, width: 161, height: 121, letterbox: true });
    const frames: DecodedFrame[] = [];
    for await (const frame of decoder.frames) {
      frames.push(frame);
      if (frame.index === 1) {
        frame.release();
        frame.release(); // twice is once
      }
    }
    expect((await decoder.exited).code).toBe(0);
    expect(frames).toHaveLength(20);
    for (const f of frames) {
      expect(f).toMatchObject({ format: "yuv420p", width: 160, height: 120 });
      expect(f.data.length).toBe(yuv420Bytes(160, 120));
    }
    // Frame 3 was read into frame 1's released slot (frame 2's slot was taken as frame 1 arrived: the socket
    // reads into the next slot while the consumer has the last); every other frame has its own. Each is shared
    // memory with room for a message header in front, so it is published where it lies (encodeFrameInPlace).
    expect(frames[3]!.data.buffer).toBe(frames[1]!.data.buffer);
    expect(new Set(frames.map((f) => f.data.buffer)).size).toBe(19);
    expect(frames[0]!.data.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(frames[0]!.slot?.pixels.buffer).toBe(frames[0]!.data.buffer);
  });

  it("decodes on NVDEC with hwaccel cuda, or exits with a line that names the hardware decoder's failure", async () => {
    const decoder = startDecoder(testClip(), {
      fps: 10,
      width: 160,
      height: 120,
      letterbox: true,
      hwaccel: "cuda",
    });
    let frames = 0;
    for await (const frame of decoder.frames) {
      expect(frame.data.length).toBe(yuv420Bytes(160, 120));
      frames++;
    }
    const exit = await decoder.exited;
    if (nvidiaGpu()) {
      expect(exit.code).toBe(0);
      expect(frames).toBe(20);
    } else {
      // No GPU here: ffmpeg cannot create the CUDA device and says so; the supervisor keys its fallback on it.
      expect(exit.code).not.toBe(0);
      expect(frames).toBe(0);
      expect(hwaccelFailure(exit.stderr)).toMatch(/device|cuda/i);
    }
  });

  it("does not mistake a missing file for a hardware decoder failure", async () => {
    const decoder = startDecoder(path.join(tempDir(), "absent.mp4"), {
      fps: 5,
      width: 160,
      height: 120,
      hwaccel: "cuda",
    });
    for await (const _ of decoder.frames) expect.unreachable();
    const exit = await decoder.exited;
    expect(exit.code).not.toBe(0);
    expect(hwaccelFailure(exit.stderr)).toBeUndefined();
  });
});
