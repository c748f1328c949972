import type { BgrImage, TensorLayout } from "./image.ts";

/**
 * Planar 4:2:0 (ffmpeg's yuv420p): a full-size Y plane, then U and V at half width and height. Live frames
 * stay in this form from the decoder to the detector: half the bytes of BGR through the pipe and the bus, no
 * colour conversion in ffmpeg, and BGR is computed only where it is looked at (the detector's downscaled
 * tensor and each face's 112×112 warp).
 */
export interface Yuv420Image {
  format: "yuv420p";
  width: number;
  height: number;
  data: Uint8Array;
}

export function isYuv420(image: object): image is Yuv420Image {
  return "format" in image && image.format === "yuv420p";
}

export function yuv420Bytes(width: number, height: number): number {
  return width * height + 2 * (width / 2) * (height / 2);
}

// BT.601 limited range: what ffmpeg's scaler assumes for untagged video, so crops match the old bgr24 path.
const KY = 1.164;
const KRV = 1.596;
const KGU = -0.392;
const KGV = -0.813;
const KBU = 2.017;

const clamp255 = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);

/** Where the planes of a yuv420p buffer start, and the chroma planes' size. */
function planes(image: Yuv420Image) {
  const cw = image.width / 2;
  const ch = image.height / 2;
  const uBase = image.width * image.height;
  return { cw, ch, uBase, vBase: uBase + cw * ch };
}

/** Writes the BGR of luma `y` and centred chroma `u`, `v` (minus 128) as bytes at out[o..o+2]. */
function storeBgr(out: Uint8Array, o: number, y: number, u: number, v: number) {
  const l = KY * (y - 16);
  out[o] = Math.round(clamp255(l + KBU * u));
  out[o + 1] = Math.round(clamp255(l + KGU * u + KGV * v));
  out[o + 2] = Math.round(clamp255(l + KRV * v));
}

/** Where one of B, G, R goes in a tensor and how it is normalised. */
interface ChannelSlot {
  base: number;
  mean: number;
  inv: number;
}

/** Writes the normalised BGR of luma `y` and centred chroma `u`, `v` into the three planes at `at`. */
function storeTensor(
  out: Float32Array,
  at: number,
  y: number,
  u: number,
  v: number,
  b: ChannelSlot,
  g: ChannelSlot,
  r: ChannelSlot,
) {
  const l = KY * (y - 16);
  out[b.base + at] = (clamp255(l + KBU * u) - b.mean) * b.inv;
  out[g.base + at] = (clamp255(l + KGU * u + KGV * v) - g.mean) * g.inv;
  out[r.base + at] = (clamp255(l + KRV * v) - r.mean) * r.inv;
}

/** Converts a whole frame to packed BGR (for paths that need every pixel, such as the fallback detector). */
export function yuv420ToBgr(image: Yuv420Image): BgrImage {
  const { width, height, data } = image;
  const { cw, uBase, vBase } = planes(image);
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const crow = (y >> 1) * cw;
    for (let x = 0; x < width; x++) {
      const c = crow + (x >> 1);
      storeBgr(
        out,
        (y * width + x) * 3,
        data[y * width + x]!,
        data[uBase + c]! - 128,
        data[vBase + c]! - 128,
      );
    }
  }
  return { width, height, data: out };
}

/**
 * Warps a frame through the inverse affine `inv` (output → source) into a width×height packed BGR crop:
 * bilinear luma (black outside the frame), bilinear chroma centred between its luma pixels (edge-clamped).
 * One tight loop, as it runs for every face of every frame.
 */
export function warpYuv420(
  image: Yuv420Image,
  inv: readonly number[],
  width: number,
  height: number,
): BgrImage {
  if (width % 2 === 0 && height % 2 === 0 && footprintInside(image, inv, width, height))
    return warpInterior(image, inv, width, height);
  const { width: W, height: H, data } = image;
  const { cw, ch, uBase, vBase } = planes(image);
  const out = new Uint8Array(width * height * 3);
  const [a, b, tx, c, d, ty] = inv as [number, number, number, number, number, number];
  let o = 0;
  for (let v = 0; v < height; v++) {
    let x = b * v + tx;
    let y = d * v + ty;
    for (let u = 0; u < width; u++, x += a, y += c, o += 3) {
      const x0 = Math.floor(x);
      const y0 = Math.floor(y);
      if (x0 < -1 || y0 < -1 || x0 >= W || y0 >= H) continue;
      const fx = x - x0;
      const fy = y - y0;
      const p = y0 * W + x0;
      const inX0 = x0 >= 0,
        inX1 = x0 + 1 < W,
        inY0 = y0 >= 0,
        inY1 = y0 + 1 < H;
      let luma = 0;
      if (inY0 && inX0) luma += (1 - fx) * (1 - fy) * data[p]!;
      if (inY0 && inX1) luma += fx * (1 - fy) * data[p + 1]!;
      if (inY1 && inX0) luma += (1 - fx) * fy * data[p + W]!;
      if (inY1 && inX1) luma += fx * fy * data[p + W + 1]!;
      const cx = Math.min(Math.max((x - 0.5) / 2, 0), cw - 1);
      const cy = Math.min(Math.max((y - 0.5) / 2, 0), ch - 1);
      const cx0 = Math.floor(cx);
      const cy0 = Math.floor(cy);
      const gx = cx - cx0;
      const gy = cy - cy0;
      const cx1 = cx0 + 1 < cw ? 1 : 0;
      const cy1 = cy0 + 1 < ch ? cw : 0;
      const q = cy0 * cw + cx0;
      const w00 = (1 - gx) * (1 - gy),
        w10 = gx * (1 - gy),
        w01 = (1 - gx) * gy,
        w11 = gx * gy;
      const uu =
        w00 * data[uBase + q]! +
        w10 * data[uBase + q + cx1]! +
        w01 * data[uBase + q + cy1]! +
        w11 * data[uBase + q + cy1 + cx1]! -
        128;
      const vv =
        w00 * data[vBase + q]! +
        w10 * data[vBase + q + cx1]! +
        w01 * data[vBase + q + cy1]! +
        w11 * data[vBase + q + cy1 + cx1]! -
        128;
      storeBgr(out, o, luma, uu, vv);
    }
  }
  return { width, height, data: out };
}

/**
 * Whether every source position the warp reads, luma and chroma with their bilinear neighbours, lies inside the
 * frame. The output maps to a parallelogram, so its four corners bound it. A face fully in view (nearly all of
 * them) then takes the loop without a single bounds check.
 */
export function footprintInside(
  image: { width: number; height: number },
  inv: readonly number[],
  width: number,
  height: number,
): boolean {
  const [a, b, tx, c, d, ty] = inv as [number, number, number, number, number, number];
  const xs = [tx, a * (width - 1) + tx, b * (height - 1) + tx, a * (width - 1) + b * (height - 1) + tx];
  const ys = [ty, c * (width - 1) + ty, d * (height - 1) + ty, c * (width - 1) + d * (height - 1) + ty];
  return (
    Math.min(...xs) >= 1 &&
    Math.max(...xs) <= image.width - 3 &&
    Math.min(...ys) >= 1 &&
    Math.max(...ys) <= image.height - 3
  );
}

/** KY · (bilinear luma − 16) at (x, y), both positive and inside the plane with a pixel to spare. */
function lumaAt(data: Uint8Array, W: number, x: number, y: number): number {
  const x0 = x | 0;
  const y0 = y | 0;
  const fx = x - x0;
  const p = y0 * W + x0;
  const top = data[p]! + fx * (data[p + 1]! - data[p]!);
  const bottom = data[p + W]! + fx * (data[p + W + 1]! - data[p + W]!);
  return KY * (top + (y - y0) * (bottom - top) - 16);
}

/**
 * warpYuv420 for a footprint inside the frame (even output sides): bilinear luma at every pixel; bilinear chroma
 * once per 2×2 block of output pixels, at the block's centre, since chroma has half the resolution of luma in
 * the source as well; indices truncated instead of floored (every coordinate is positive) and no edge cases.
 * The output is written through a clamped view, which rounds and clamps each channel in the store itself.
 * It runs for every face of every frame: measured here, about a third of the general loop's time.
 */
function warpInterior(image: Yuv420Image, inv: readonly number[], width: number, height: number): BgrImage {
  const { width: W, data } = image;
  const { cw, uBase, vBase } = planes(image);
  const out = new Uint8Array(width * height * 3);
  const px = new Uint8ClampedArray(out.buffer);
  const [a, b, tx, c, d, ty] = inv as [number, number, number, number, number, number];
  const rowStride = width * 3;
  for (let v = 0; v < height; v += 2) {
    // The source position of output (u, v), of (u, v + 1) below it, and of the 2×2 block's centre.
    let x = b * v + tx;
    let y = d * v + ty;
    let xc = x + 0.5 * (a + b);
    let yc = y + 0.5 * (c + d);
    let o = v * rowStride;
    for (let u = 0; u < width; u += 2, x += 2 * a, y += 2 * c, xc += 2 * a, yc += 2 * c, o += 6) {
      // Chroma samples sit between their luma pairs: chroma coordinate = (x − 0.5) / 2.
      const cx = xc * 0.5 - 0.25;
      const cy = yc * 0.5 - 0.25;
      const cx0 = cx | 0;
      const cy0 = cy | 0;
      const gx = cx - cx0;
      const gy = cy - cy0;
      const q = cy0 * cw + cx0;
      const u0 = uBase + q;
      const uTop = data[u0]! + gx * (data[u0 + 1]! - data[u0]!);
      const uBottom = data[u0 + cw]! + gx * (data[u0 + cw + 1]! - data[u0 + cw]!);
      const uu = uTop + gy * (uBottom - uTop) - 128;
      const v0 = vBase + q;
      const vTop = data[v0]! + gx * (data[v0 + 1]! - data[v0]!);
      const vBottom = data[v0 + cw]! + gx * (data[v0 + cw + 1]! - data[v0 + cw]!);
      const vv = vTop + gy * (vBottom - vTop) - 128;
      const cb = KBU * uu;
      const cg = KGU * uu + KGV * vv;
      const cr = KRV * vv;
      // The block's four pixels: (u, v), (u + 1, v), (u, v + 1), (u + 1, v + 1).
      let l = lumaAt(data, W, x, y);
      px[o] = l + cb;
      px[o + 1] = l + cg;
      px[o + 2] = l + cr;
      l = lumaAt(data, W, x + a, y + c);
      px[o + 3] = l + cb;
      px[o + 4] = l + cg;
      px[o + 5] = l + cr;
      const below = o + rowStride;
      l = lumaAt(data, W, x + b, y + d);
      px[below] = l + cb;
      px[below + 1] = l + cg;
      px[below + 2] = l + cr;
      l = lumaAt(data, W, x + a + b, y + c + d);
      px[below + 3] = l + cb;
      px[below + 4] = l + cg;
      px[below + 5] = l + cr;
    }
  }
  return { width, height, data: out };
}

/**
 * Downscales a frame straight into a float NCHW tensor: luma is the area average of each output pixel's block,
 * chroma (already at half size, and smooth) is read at the block's centre. No intermediate image is allocated:
 * at 40 frames a second, every megabyte allocated per frame is GC work on a machine that has none to spare.
 */
export function fillTensorFromYuv420(
  image: Yuv420Image,
  outWidth: number,
  outHeight: number,
  layout: TensorLayout,
  out: Float32Array,
  offset: number,
  targetWidth = outWidth,
  targetHeight = outHeight,
) {
  const { width: W, height: H, data } = image;
  const { cw, uBase, vBase } = planes(image);
  const plane = targetWidth * targetHeight;
  // Where each of B, G, R goes and how it is normalised, in the model's channel order.
  const slot = (bgrIndex: number): ChannelSlot => {
    const c = layout.channels === "rgb" ? 2 - bgrIndex : bgrIndex;
    return { base: offset + c * plane, mean: layout.mean[c]!, inv: 1 / layout.std[c]! };
  };
  const [b, g, r] = [slot(0), slot(1), slot(2)];
  const gray = layout.channels === "gray";
  if (!gray && W === 2 * outWidth && H === 2 * outHeight) {
    fillHalved(image, out, outWidth, outHeight, targetWidth, b, g, r);
    return;
  }
  const xs = blockBounds(W, outWidth);
  const ys = blockBounds(H, outHeight);
  const chromaCol = new Int32Array(outWidth);
  for (let ox = 0; ox < outWidth; ox++) chromaCol[ox] = (xs[2 * ox]! + xs[2 * ox + 1]! - 1) >> 2;
  for (let oy = 0; oy < outHeight; oy++) {
    const y0 = ys[2 * oy]!;
    const y1 = ys[2 * oy + 1]!;
    const chromaRow = ((y0 + y1 - 1) >> 2) * cw;
    const row = oy * targetWidth;
    for (let ox = 0; ox < outWidth; ox++) {
      const x0 = xs[2 * ox]!;
      const x1 = xs[2 * ox + 1]!;
      let sum = 0;
      for (let y = y0; y < y1; y++) {
        const p = y * W;
        for (let x = x0; x < x1; x++) sum += data[p + x]!;
      }
      const mean = sum / ((y1 - y0) * (x1 - x0));
      if (gray) {
        out[b.base + row + ox] = (KY * (mean - 16) - b.mean) * b.inv;
        continue;
      }
      const c = chromaRow + chromaCol[ox]!;
      storeTensor(out, row + ox, mean, data[uBase + c]! - 128, data[vBase + c]! - 128, b, g, r);
    }
  }
}

/**
 * The default 720p → 360p case, unrolled: each output pixel is one 2×2 luma block and one chroma sample. It
 * runs on every frame, so the conversion and the slots are spelt out in locals rather than through storeTensor:
 * measured end to end, the helper cost 3–4 % of 8-camera throughput here.
 */
function fillHalved(
  image: Yuv420Image,
  out: Float32Array,
  outWidth: number,
  outHeight: number,
  targetWidth: number,
  b: ChannelSlot,
  g: ChannelSlot,
  r: ChannelSlot,
) {
  const { width: W, data } = image;
  const { uBase, vBase } = planes(image);
  const { base: bBase, mean: bMean, inv: bInv } = b;
  const { base: gBase, mean: gMean, inv: gInv } = g;
  const { base: rBase, mean: rMean, inv: rInv } = r;
  for (let oy = 0; oy < outHeight; oy++) {
    const top = 2 * oy * W;
    const chroma = oy * outWidth;
    const row = oy * targetWidth;
    for (let ox = 0; ox < outWidth; ox++) {
      const p = top + 2 * ox;
      const l = KY * ((data[p]! + data[p + 1]! + data[p + W]! + data[p + W + 1]!) * 0.25 - 16);
      const u = data[uBase + chroma + ox]! - 128;
      const v = data[vBase + chroma + ox]! - 128;
      const vb = l + KBU * u;
      const vg = l + KGU * u + KGV * v;
      const vr = l + KRV * v;
      out[bBase + row + ox] = ((vb < 0 ? 0 : vb > 255 ? 255 : vb) - bMean) * bInv;
      out[gBase + row + ox] = ((vg < 0 ? 0 : vg > 255 ? 255 : vg) - gMean) * gInv;
      out[rBase + row + ox] = ((vr < 0 ? 0 : vr > 255 ? 255 : vr) - rMean) * rInv;
    }
  }
}

/** [start, end) source indices per output index; never empty, so upscaling repeats pixels. */
function blockBounds(source: number, output: number): Int32Array {
  const bounds = new Int32Array(2 * output);
  for (let i = 0; i < output; i++) {
    const start = Math.min(source - 1, Math.floor((i * source) / output));
    bounds[2 * i] = start;
    bounds[2 * i + 1] = Math.max(start + 1, Math.min(source, Math.floor(((i + 1) * source) / output)));
  }
  return bounds;
}
