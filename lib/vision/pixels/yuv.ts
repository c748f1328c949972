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
  // 16.16 positions hold frames up to 32,767 pixels a side.
  const fits = image.width < 32768 && image.height < 32768;
  if (fits && width % 2 === 0 && height % 2 === 0 && footprintInside(image, inv, width, height))
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

// The interior warp works in integers: source positions in 16.16 fixed point, bilinear weights of 10 bits,
// colour in units of 2^-20. V8 keeps all of it in 32-bit registers (the float version converted every index
// and stored through a clamped view, which rounds each byte). Every intermediate stays below 2^31.
const FIX = 65536;
const KY_I = Math.round(KY * 1024);
const KRV_I = Math.round(KRV * 1024);
const KGU_I = Math.round(KGU * 1024);
const KGV_I = Math.round(KGV * 1024);
const KBU_I = Math.round(KBU * 1024);
const HALF = 1 << 19;
/** Saturation to 0..255 by table: index (value >> 20) + CLAMP_AT covers every sum the conversion can make. */
const CLAMP_AT = 512;
const CLAMP = Uint8Array.from({ length: 1536 }, (_, i) => Math.min(255, Math.max(0, i - CLAMP_AT)));

/**
 * Bilinear value at the 16.16 position (x, y) of the plane starting at `base` with row length `W`, in units of
 * 2^-10, from two 16-bit reads (a pixel and its right neighbour at once). The position must have a pixel to
 * spare right and below.
 */
function bilinearAt(dv: DataView, base: number, W: number, x: number, y: number): number {
  const fx = (x >> 6) & 1023;
  const p = base + (y >> 16) * W + (x >> 16);
  const t = dv.getUint16(p, true);
  const b = dv.getUint16(p + W, true);
  const top = ((t & 255) << 10) + fx * ((t >> 8) - (t & 255));
  const bottom = ((b & 255) << 10) + fx * ((b >> 8) - (b & 255));
  return ((top << 10) + ((y >> 6) & 1023) * (bottom - top)) >> 10;
}

/**
 * warpYuv420 for a footprint inside the frame (even output sides): bilinear luma at every pixel; bilinear chroma
 * once per 2×2 block of output pixels, at the block's centre, since chroma has half the resolution of luma in
 * the source as well; no edge cases. It runs for every face of every frame: about a sixth of the general loop's
 * time (0.1 ms for 112×112 here), and within 3 levels of it (mean 0.3) from the rounding of the weights.
 */
function warpInterior(image: Yuv420Image, inv: readonly number[], width: number, height: number): BgrImage {
  const { width: W, data } = image;
  const { cw, uBase, vBase } = planes(image);
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(width * height * 3);
  const [a, b, tx, c, d, ty] = inv as [number, number, number, number, number, number];
  const ai = Math.round(a * FIX);
  const bi = Math.round(b * FIX);
  const ci = Math.round(c * FIX);
  const di = Math.round(d * FIX);
  const rowStride = width * 3;
  const lumaBias = 16 * 1024 * KY_I - HALF;
  for (let v = 0; v < height; v += 2) {
    // The source position of output (u, v) and, in chroma coordinates ((x − 0.5) / 2: chroma samples sit
    // between their luma pairs), of the 2×2 block's centre.
    const x = b * v + tx;
    const y = d * v + ty;
    let xi = Math.round(x * FIX);
    let yi = Math.round(y * FIX);
    let xc = Math.round(((x + 0.5 * (a + b)) * 0.5 - 0.25) * FIX);
    let yc = Math.round(((y + 0.5 * (c + d)) * 0.5 - 0.25) * FIX);
    let o = v * rowStride;
    for (let u = 0; u < width; u += 2, xi += 2 * ai, yi += 2 * ci, xc += ai, yc += ci, o += 6) {
      const uu = bilinearAt(dv, uBase, cw, xc, yc) - 131072;
      const vv = bilinearAt(dv, vBase, cw, xc, yc) - 131072;
      const cb = KBU_I * uu;
      const cg = KGU_I * uu + KGV_I * vv;
      const cr = KRV_I * vv;
      // The block's four pixels: (u, v), (u + 1, v), (u, v + 1), (u + 1, v + 1).
      let l = KY_I * bilinearAt(dv, 0, W, xi, yi) - lumaBias;
      out[o] = CLAMP[((l + cb) >> 20) + CLAMP_AT]!;
      out[o + 1] = CLAMP[((l + cg) >> 20) + CLAMP_AT]!;
      out[o + 2] = CLAMP[((l + cr) >> 20) + CLAMP_AT]!;
      l = KY_I * bilinearAt(dv, 0, W, xi + ai, yi + ci) - lumaBias;
      out[o + 3] = CLAMP[((l + cb) >> 20) + CLAMP_AT]!;
      out[o + 4] = CLAMP[((l + cg) >> 20) + CLAMP_AT]!;
      out[o + 5] = CLAMP[((l + cr) >> 20) + CLAMP_AT]!;
      const below = o + rowStride;
      l = KY_I * bilinearAt(dv, 0, W, xi + bi, yi + di) - lumaBias;
      out[below] = CLAMP[((l + cb) >> 20) + CLAMP_AT]!;
      out[below + 1] = CLAMP[((l + cg) >> 20) + CLAMP_AT]!;
      out[below + 2] = CLAMP[((l + cr) >> 20) + CLAMP_AT]!;
      l = KY_I * bilinearAt(dv, 0, W, xi + ai + bi, yi + ci + di) - lumaBias;
      out[below + 3] = CLAMP[((l + cb) >> 20) + CLAMP_AT]!;
      out[below + 4] = CLAMP[((l + cg) >> 20) + CLAMP_AT]!;
      out[below + 5] = CLAMP[((l + cr) >> 20) + CLAMP_AT]!;
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
