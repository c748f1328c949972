import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { invertAffine, similarityTransform, warpAffine } from "./align.ts";
import { fillTensor, resizeImage, type BgrImage, type TensorLayout } from "./image.ts";
import { fillTensorFromYuv420, yuv420Bytes, yuv420ToBgr, type Yuv420Image } from "./yuv.ts";

// One frame of ffmpeg's colourful test pattern, in both pixel formats, converted by ffmpeg itself.
const W = 1280;
const H = 720;
const grab = (pixFmt: string) =>
  new Uint8Array(
    execFileSync(
      "ffmpeg",
      ["-loglevel", "error", "-f", "lavfi", "-i", `testsrc2=size=${W}x${H}:rate=1`, "-frames:v", "1"].concat([
        "-pix_fmt",
        pixFmt,
        "-f",
        "rawvideo",
        "-",
      ]),
      { maxBuffer: 1 << 26 },
    ),
  );
const yuv: Yuv420Image = { format: "yuv420p", width: W, height: H, data: grab("yuv420p") };
const bgr: BgrImage = { width: W, height: H, data: grab("bgr24") };

const meanAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i]! - b[i]!);
  return sum / a.length;
};

const identity: TensorLayout = { channels: "bgr", mean: [0, 0, 0], std: [1, 1, 1] };

describe("yuv420p frames", () => {
  it("has the size ffmpeg writes", () => {
    expect(yuv.data.length).toBe(yuv420Bytes(W, H));
    expect(bgr.data.length).toBe(W * H * 3);
  });

  it("converts to the BGR ffmpeg's own scaler gives, within rounding and chroma interpolation", () => {
    const converted = yuv420ToBgr(yuv);
    // testsrc2 is all hard colour edges, the worst case for 4:2:0 chroma; flat areas agree to a level or two.
    expect(meanAbsDiff(converted.data, bgr.data)).toBeLessThan(1.5);
  });

  it.each([
    ["halving (720p → 640×360)", 640, 360],
    ["any other size (720p → 500×281)", 500, 281],
  ])("fills a detector tensor like resize-then-fill on BGR: %s", async (_, w, h) => {
    const padW = Math.ceil(w / 32) * 32;
    const padH = Math.ceil(h / 32) * 32;
    const fromYuv = new Float32Array(3 * padW * padH).fill(-1);
    fillTensorFromYuv420(yuv, w, h, identity, fromYuv, 0, padW, padH);
    const fromBgr = new Float32Array(3 * padW * padH).fill(-1);
    fillTensor(await resizeImage(bgr, w, h), identity, fromBgr, 0, padW, padH);
    expect(meanAbsDiff(fromYuv, fromBgr)).toBeLessThan(3.5);
    // Padding is left alone: the detector's reused tensors rely on it.
    expect(fromYuv[padW - 1]).toBe(padW > w ? -1 : fromYuv[padW - 1]);
    expect(fromYuv[3 * padW * padH - 1]).toBe(-1);
  });

  it("orders and normalises channels as the layout says", () => {
    const bgrOut = new Float32Array(3 * 64 * 36);
    const rgbOut = new Float32Array(3 * 64 * 36);
    fillTensorFromYuv420(yuv, 64, 36, identity, bgrOut, 0);
    fillTensorFromYuv420(
      yuv,
      64,
      36,
      { channels: "rgb", mean: [127.5, 127.5, 127.5], std: [128, 128, 128] },
      rgbOut,
      0,
    );
    const plane = 64 * 36;
    for (const i of [0, 100, 2000]) {
      expect(rgbOut[i]).toBeCloseTo((bgrOut[2 * plane + i]! - 127.5) / 128, 4); // R first
      expect(rgbOut[2 * plane + i]).toBeCloseTo((bgrOut[i]! - 127.5) / 128, 4); // B last
    }
  });

  it("warps a face-sized crop like the BGR warp does", () => {
    // A rotated, scaled 112×112 crop around the middle, as face alignment makes.
    const m = similarityTransform(
      [
        [600, 300],
        [700, 320],
      ],
      [
        [38, 52],
        [74, 52],
      ],
    );
    const a = warpAffine(yuv, m, 112, 112);
    const b = warpAffine(bgr, m, 112, 112);
    expect(a.data.length).toBe(112 * 112 * 3);
    expect(meanAbsDiff(a.data, b.data)).toBeLessThan(2.5);
  });

  it("warps inside the frame in integers within one level of the same sampling in floats", () => {
    const m = similarityTransform(
      [
        [600, 300],
        [690, 330],
      ],
      [
        [38, 52],
        [74, 52],
      ],
    );
    const [a, b, tx, c, d, ty] = invertAffine(m);
    const plane = (base: number, w: number, x: number, y: number) => {
      const x0 = Math.floor(x),
        y0 = Math.floor(y),
        fx = x - x0,
        fy = y - y0;
      const at = (i: number, j: number) => yuv.data[base + (y0 + j) * w + x0 + i]!;
      return (1 - fy) * ((1 - fx) * at(0, 0) + fx * at(1, 0)) + fy * ((1 - fx) * at(0, 1) + fx * at(1, 1));
    };
    // Bilinear luma per pixel, bilinear chroma once per 2×2 block at its centre, BT.601 limited range.
    const expected = (u: number, v: number, ch: number) => {
      const [bu, bv] = [u - (u % 2) + 0.5, v - (v % 2) + 0.5];
      const [cx, cy] = [(a * bu + b * bv + tx - 0.5) / 2, (c * bu + d * bv + ty - 0.5) / 2];
      const cb = plane(W * H, W / 2, cx, cy) - 128;
      const cr = plane(W * H * 1.25, W / 2, cx, cy) - 128;
      const l = 1.164 * (plane(0, W, a * u + b * v + tx, c * u + d * v + ty) - 16);
      const value = [l + 2.017 * cb, l - 0.392 * cb - 0.813 * cr, l + 1.596 * cr][ch]!;
      return Math.min(255, Math.max(0, Math.round(value)));
    };
    const crop = warpAffine(yuv, m, 112, 112);
    let worst = 0;
    for (let v = 0; v < 112; v++)
      for (let u = 0; u < 112; u++)
        for (let ch = 0; ch < 3; ch++)
          worst = Math.max(worst, Math.abs(crop.data[(v * 112 + u) * 3 + ch]! - expected(u, v, ch)));
    expect(worst).toBeLessThanOrEqual(1);
  });
});
