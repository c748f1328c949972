import path from "node:path";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { startDecoder } from "./ffmpeg.ts";
import { generateVideo } from "./generate.ts";
import { tempDir } from "../../test/helpers.ts";

describe("decoder with JPEG output (frames for Kafka)", () => {
  it("yields one complete JPEG per sampled frame, at the requested size, far smaller than raw", async () => {
    const video = path.join(tempDir(), "clip.mp4");
    generateVideo("testsrc2=size=640x360:rate=25:duration=2", video);
    const decoder = startDecoder(video, {
      fps: 5,
      width: 320,
      height: 180,
      encoding: "jpeg",
      jpegQuality: 3,
    });
    const frames = [];
    for await (const f of decoder.frames) frames.push(f);
    expect((await decoder.exited).code).toBe(0);
    expect(frames).toHaveLength(10);
    for (const f of frames) {
      expect(f.format).toBe("jpeg");
      const meta = await sharp(f.data).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(["jpeg", 320, 180]);
      expect(f.data.byteLength).toBeLessThan((320 * 180 * 3) / 2 / 4);
    }
    expect(frames.map((f) => f.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});
