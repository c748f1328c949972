import { execFileSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { tempDir } from "../../test/helpers.ts";
import { yuv420Bytes } from "../vision/pixels/yuv.ts";
import { startDecoder, type DecodedFrame } from "./ffmpeg.ts";

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
    // Frame 2 was decoded into frame 1's released buffer; every other frame has its own.
    expect(frames[2]!.data).toBe(frames[1]!.data);
    expect(new Set(frames.map((f) => f.data)).size).toBe(19);
  });
});
