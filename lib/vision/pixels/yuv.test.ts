import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { invertAffine, similarityTransform, warpAffine } from "./align.ts";
import {
  cropFormatOf,
  fillTensor,
  flipHorizontal,
  messageCrop,
  resizeImage,
  toBgr,
  type BgrImage,
  type TensorLayout,
} from "./image.ts";
import { sharpness } from "./quality.ts";
import {
  fillTensorFromYuv420,
  isYuv420,
  rgbToYuv420,
  yuv420Bytes,
  yuv420ToBgr,
  type Yuv420Image,
} from "./yuv.ts";

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

/** A 112×112 crop of `frame` with the two eye points at `left` and `right`, as face alignment makes. */
const faceCrop = (frame: Yuv420Image, left: [number, number], right: [number, number]) =>
  warpAffine(
    frame,
    similarityTransform(
      [left, right],
      [
        [38, 52],
        [74, 52],
      ],
    ),
    112,
    112,
  );

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

  it("converts RGB (a decoded JPEG) to the yuv420p ffmpeg's scaler makes of the same frame", () => {
    const rgb = grab("rgb24");
    const converted = rgbToYuv420(rgb, W, H);
    const luma = W * H;
    // Luma is per pixel and exact but for rounding; chroma is each 2×2 block's mean, where ffmpeg filters.
    expect(meanAbsDiff(converted.data.subarray(0, luma), yuv.data.subarray(0, luma))).toBeLessThan(0.6);
    expect(meanAbsDiff(converted.data.subarray(luma), yuv.data.subarray(luma))).toBeLessThan(1.5);
    // Grey stays neutral and white is limited range's white.
    const grey = rgbToYuv420(new Uint8Array(2 * 2 * 3).fill(200), 2, 2).data;
    expect([...grey]).toEqual([188, 188, 188, 188, 128, 128]);
    expect(rgbToYuv420(new Uint8Array(12).fill(255), 2, 2).data[0]).toBe(235);
    expect(() => rgbToYuv420(new Uint8Array(9), 3, 1)).toThrow(/odd side/);
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

  it("warps a face-sized crop like the BGR warp does, kept in yuv420p", () => {
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
    expect(isYuv420(a)).toBe(true);
    expect(a.data.length).toBe(yuv420Bytes(112, 112));
    expect(meanAbsDiff(toBgr(a).data, b.data)).toBeLessThan(2.5);
    // A face at the frame's edge takes the general loop: the same crop where both see the frame, black beyond.
    const edge = similarityTransform(
      [
        [5, 300],
        [105, 320],
      ],
      [
        [38, 52],
        [74, 52],
      ],
    );
    const c = toBgr(warpAffine(yuv, edge, 112, 112));
    const d = warpAffine(bgr, edge, 112, 112);
    expect(meanAbsDiff(c.data, d.data)).toBeLessThan(2.5);
    expect(Array.from(c.data.subarray(0, 3))).toEqual([0, 0, 0]);
    // An odd-sided crop cannot be yuv420p: it comes out BGR, sampled the same way.
    const odd = warpAffine(yuv, m, 111, 111);
    expect(isYuv420(odd)).toBe(false);
    expect(odd.data.length).toBe(111 * 111 * 3);
    const evenRows = toBgr(a).data;
    let diff = 0;
    for (let v = 0; v < 110; v++)
      for (let k = 0; k < 110 * 3; k++) diff += Math.abs(odd.data[v * 333 + k]! - evenRows[v * 336 + k]!);
    expect(diff / (110 * 330)).toBeLessThan(2.5);
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
    const crop = warpAffine(yuv, m, 112, 112);
    let worst = 0;
    // Bilinear luma per pixel.
    for (let v = 0; v < 112; v++)
      for (let u = 0; u < 112; u++) {
        const want = Math.round(plane(0, W, a * u + b * v + tx, c * u + d * v + ty));
        worst = Math.max(worst, Math.abs(crop.data[v * 112 + u]! - want));
      }
    // Bilinear chroma once per 2×2 block, at its centre.
    for (let v = 0; v < 56; v++)
      for (let u = 0; u < 56; u++) {
        const [bu, bv] = [2 * u + 0.5, 2 * v + 0.5];
        const [cx, cy] = [(a * bu + b * bv + tx - 0.5) / 2, (c * bu + d * bv + ty - 0.5) / 2];
        const q = 112 * 112 + v * 56 + u;
        worst = Math.max(worst, Math.abs(crop.data[q]! - Math.round(plane(W * H, W / 2, cx, cy))));
        worst = Math.max(
          worst,
          Math.abs(crop.data[q + 56 * 56]! - Math.round(plane(W * H * 1.25, W / 2, cx, cy))),
        );
      }
    expect(worst).toBeLessThanOrEqual(1);
  });

  it("fills an embedder's tensor from a yuv420p crop as from its BGR conversion", () => {
    const crop = faceCrop(yuv, [600, 300], [690, 330]);
    const n = 3 * 112 * 112;
    for (const layout of [
      identity,
      { channels: "rgb", mean: [127.5, 127.5, 127.5], std: [128, 128, 128] },
    ] as const) {
      const direct = new Float32Array(n);
      const viaBgr = new Float32Array(n);
      fillTensor(crop, layout as TensorLayout, direct, 0);
      fillTensor(toBgr(crop), layout as TensorLayout, viaBgr, 0);
      // The BGR conversion rounds to whole levels; the direct fill does not.
      let worst = 0;
      for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(direct[i]! - viaBgr[i]!) * layout.std[0]);
      expect(worst).toBeLessThanOrEqual(0.5 + 1e-3);
    }
  });

  it("mirrors a yuv420p crop plane by plane", () => {
    const crop = faceCrop(yuv, [600, 300], [690, 330]);
    const flipped = flipHorizontal(crop);
    expect(isYuv420(flipped)).toBe(true);
    const a = toBgr(flipped).data;
    const b = flipHorizontal(toBgr(crop)).data;
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
  });

  it("scores a yuv420p crop's sharpness on the grey scale of its BGR conversion", () => {
    // Without colour, so that nothing clamps in the conversion (the grey of a clamped pixel is not its luma, and
    // there the luma's measure is the truer one): then grey is 1.164 × (luma − 16) exactly, but for rounding.
    const muted = Uint8Array.from(yuv.data, (v, i) => (i < W * H ? 16 + ((v * 219) >> 8) : 128));
    const frame: Yuv420Image = { ...yuv, data: muted };
    for (const [p, q] of [
      [
        [600, 300],
        [690, 330],
      ],
      [
        [500, 300],
        [620, 310],
      ],
    ] as [number, number][][]) {
      const crop = faceCrop(frame, p!, q!);
      const own = sharpness(crop);
      expect(own).toBeGreaterThan(0);
      expect(Math.abs(own / sharpness(toBgr(crop)) - 1)).toBeLessThan(0.02);
    }
  });
});

describe("crops in messages", () => {
  const crop = faceCrop(yuv, [600, 300], [690, 330]);

  it("carries a yuv420p crop's format, and nothing for BGR", () => {
    expect(cropFormatOf(crop)).toEqual({ cropFormat: "yuv420p" });
    expect(cropFormatOf(toBgr(crop))).toEqual({});
    const back = messageCrop({
      cropSize: { width: 112, height: 112 },
      ...cropFormatOf(crop),
      crop: crop.data,
    });
    expect(isYuv420(back)).toBe(true);
    expect(back.data).toBe(crop.data);
    expect(isYuv420(messageCrop({ cropSize: { width: 4, height: 2 }, crop: new Uint8Array(24) }))).toBe(
      false,
    );
  });

  it("refuses a crop whose bytes do not fit its size and format", () => {
    expect(() => messageCrop({ cropSize: { width: 112, height: 112 }, crop: crop.data })).toThrow(
      /18816 bytes does not hold a 112×112 bgr24 image \(37632 bytes\)/,
    );
    expect(() =>
      messageCrop({
        cropSize: { width: 111, height: 112 },
        cropFormat: "yuv420p",
        crop: new Uint8Array(18648),
      }),
    ).toThrow(/yuv420p/);
  });
});
