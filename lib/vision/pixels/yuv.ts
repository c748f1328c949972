import type { BgrImage, FrameImage, TensorLayout } from "./image.ts";

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

/** Where each of B, G, R goes in a tensor slot at `offset` and how it is normalised, in the model's channel order. */
function channelSlots(
  layout: TensorLayout,
  offset: number,
  plane: number,
): [ChannelSlot, ChannelSlot, ChannelSlot] {
  const slot = (bgrIndex: number): ChannelSlot => {
    const c = layout.channels === "rgb" ? 2 - bgrIndex : bgrIndex;
    return { base: offset + c * plane, mean: layout.mean[c]!, inv: 1 / layout.std[c]! };
  };
  return [slot(0), slot(1), slot(2)];
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

// rgbToYuv420's coefficients in 16-bit fixed point (219/255 and 224/255 of BT.601's), offsets and rounding folded
// in; chroma takes the sum of a 2×2 block, hence 2 more bits. The chroma rows each sum to zero, so grey stays exactly
// neutral; nothing can leave [16, 240], so no clamp.
const Y0 = (16 << 16) + (1 << 15);
const C0 = (128 << 18) + (1 << 17);
const lumaOf = (r: number, g: number, b: number) => (16829 * r + 33039 * g + 6416 * b + Y0) >> 16;

/**
 * Packed RGB (what libjpeg decodes to) as yuv420p, BT.601 limited range: the inverse of the conversion above, luma
 * per pixel and chroma from each 2×2 block's mean. A JPEG frame from Kafka then takes the live frames' path (the
 * detector's frame-input graph, the integer warp, yuv420p crops) instead of a photo's: a channel swap, a libvips
 * resize and a float fill for the detector, which together cost half again as much as this conversion. Sides must
 * be even.
 */
export function rgbToYuv420(rgb: Uint8Array, width: number, height: number): Yuv420Image {
  if (width % 2 !== 0 || height % 2 !== 0) throw new RangeError(`a ${width}×${height} image has an odd side`);
  if (rgb.length !== width * height * 3)
    throw new RangeError(`${rgb.length} bytes do not hold a ${width}×${height} RGB image`);
  const out = new Uint8Array(yuv420Bytes(width, height));
  const cw = width >> 1;
  const uBase = width * height;
  const vBase = uBase + cw * (height >> 1);
  const stride = width * 3;
  for (let y = 0; y < height; y += 2) {
    let p = y * stride;
    let o = y * width;
    let c = (y >> 1) * cw;
    for (let x = 0; x < width; x += 2, p += 6, o += 2, c++) {
      const q = p + stride;
      const r0 = rgb[p]!,
        g0 = rgb[p + 1]!,
        b0 = rgb[p + 2]!;
      const r1 = rgb[p + 3]!,
        g1 = rgb[p + 4]!,
        b1 = rgb[p + 5]!;
      const r2 = rgb[q]!,
        g2 = rgb[q + 1]!,
        b2 = rgb[q + 2]!;
      const r3 = rgb[q + 3]!,
        g3 = rgb[q + 4]!,
        b3 = rgb[q + 5]!;
      out[o] = lumaOf(r0, g0, b0);
      out[o + 1] = lumaOf(r1, g1, b1);
      out[o + width] = lumaOf(r2, g2, b2);
      out[o + width + 1] = lumaOf(r3, g3, b3);
      const r = r0 + r1 + r2 + r3,
        g = g0 + g1 + g2 + g3,
        b = b0 + b1 + b2 + b3;
      out[uBase + c] = (-9714 * r - 19070 * g + 28784 * b + C0) >> 18;
      out[vBase + c] = (28784 * r - 24103 * g - 4681 * b + C0) >> 18;
    }
  }
  return { format: "yuv420p", width, height, data: out };
}

/**
 * Warps a frame through the inverse affine `inv` (output → source) into a width×height crop: bilinear luma
 * (black outside the frame), bilinear chroma centred between its luma pixels (edge-clamped), once per 2×2 block of
 * output pixels since chroma has half the resolution of luma in the source as well. An even-sided crop stays
 * yuv420p: no colour conversion per pixel here, where it ran for every face of every frame; the embedder's tensor
 * fill, which walks every pixel anyway, converts it, and BGR is made only for a crop someone looks at.
 */
export function warpYuv420(
  image: Yuv420Image,
  inv: readonly number[],
  width: number,
  height: number,
): FrameImage {
  if (width % 2 !== 0 || height % 2 !== 0) return warpToBgr(image, inv, width, height);
  // 16.16 positions hold frames up to 32,767 pixels a side.
  const fits = image.width < 32768 && image.height < 32768;
  if (fits && footprintInside(image, inv, width, height)) return warpInterior(image, inv, width, height);
  const { width: W, height: H, data } = image;
  const { cw, ch, uBase, vBase } = planes(image);
  const out = new Uint8Array(yuv420Bytes(width, height));
  const [a, b, tx, c, d, ty] = inv as [number, number, number, number, number, number];
  for (let v = 0, o = 0; v < height; v++) {
    let x = b * v + tx;
    let y = d * v + ty;
    for (let u = 0; u < width; u++, x += a, y += c, o++) out[o] = Math.round(lumaAt(data, W, H, x, y));
  }
  const half = width / 2;
  const cOut = width * height;
  const vOut = cOut + (half * height) / 2;
  for (let v = 0; v < height; v += 2) {
    for (let u = 0; u < width; u += 2) {
      const q = cOut + (v / 2) * half + u / 2;
      // The block's centre, in chroma coordinates: chroma samples sit between their luma pairs.
      const x = a * (u + 0.5) + b * (v + 0.5) + tx;
      const y = c * (u + 0.5) + d * (v + 0.5) + ty;
      // A block beyond the frame is neutral, so its black luma stays black rather than taking the edge's colour.
      const outside = x < -0.5 || y < -0.5 || x > W - 0.5 || y > H - 0.5;
      const cx = Math.min(Math.max((x - 0.5) / 2, 0), cw - 1);
      const cy = Math.min(Math.max((y - 0.5) / 2, 0), ch - 1);
      out[q] = outside ? 128 : Math.round(chromaAt(data, uBase, cw, ch, cx, cy));
      out[q - cOut + vOut] = outside ? 128 : Math.round(chromaAt(data, vBase, cw, ch, cx, cy));
    }
  }
  return { format: "yuv420p", width, height, data: out };
}

/** Bilinear luma at (x, y), with what lies outside the frame counted as 0. */
function lumaAt(data: Uint8Array, W: number, H: number, x: number, y: number): number {
  const x0 = Math.floor(x);
  const y0 = Math.floor(y);
  if (x0 < -1 || y0 < -1 || x0 >= W || y0 >= H) return 0;
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
  return luma;
}

/** Bilinear chroma of the plane at `base` at (cx, cy), already clamped into the plane; edges repeat. */
function chromaAt(data: Uint8Array, base: number, cw: number, ch: number, cx: number, cy: number): number {
  const cx0 = Math.floor(cx);
  const cy0 = Math.floor(cy);
  const gx = cx - cx0;
  const gy = cy - cy0;
  const dx = cx0 + 1 < cw ? 1 : 0;
  const dy = cy0 + 1 < ch ? cw : 0;
  const q = base + cy0 * cw + cx0;
  return (
    (1 - gy) * ((1 - gx) * data[q]! + gx * data[q + dx]!) +
    gy * ((1 - gx) * data[q + dy]! + gx * data[q + dy + dx]!)
  );
}

/** An odd-sided crop, which yuv420p cannot hold: the same sampling, converted to BGR pixel by pixel. */
function warpToBgr(image: Yuv420Image, inv: readonly number[], width: number, height: number): BgrImage {
  const { width: W, height: H, data } = image;
  const { cw, ch, uBase, vBase } = planes(image);
  const out = new Uint8Array(width * height * 3);
  const [a, b, tx, c, d, ty] = inv as [number, number, number, number, number, number];
  let o = 0;
  for (let v = 0; v < height; v++) {
    let x = b * v + tx;
    let y = d * v + ty;
    for (let u = 0; u < width; u++, x += a, y += c, o += 3) {
      // Beyond the frame stays black (lumaAt would give 0 there, but the edge's chroma would colour it).
      const x0 = Math.floor(x);
      const y0 = Math.floor(y);
      if (x0 < -1 || y0 < -1 || x0 >= W || y0 >= H) continue;
      const cx = Math.min(Math.max((x - 0.5) / 2, 0), cw - 1);
      const cy = Math.min(Math.max((y - 0.5) / 2, 0), ch - 1);
      storeBgr(
        out,
        o,
        lumaAt(data, W, H, x, y),
        chromaAt(data, uBase, cw, ch, cx, cy) - 128,
        chromaAt(data, vBase, cw, ch, cx, cy) - 128,
      );
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

// The interior warp works in integers: source positions in 16.16 fixed point, bilinear weights of 10 bits. V8
// keeps all of it in 32-bit registers (a float version converted every index and stored through a clamped view,
// which rounds each byte). Every intermediate stays below 2^31.
const FIX = 65536;

/**
 * Bilinear value at the 16.16 position (x, y) of the plane starting at `base` with row length `W`, in units of
 * 2^-10. The position must have a pixel to spare right and below. (All four reads first: measurably faster in V8.)
 */
function bilinearAt(data: Uint8Array, base: number, W: number, x: number, y: number): number {
  const fx = (x >> 6) & 1023;
  const p = base + (y >> 16) * W + (x >> 16);
  const t0 = data[p]!,
    t1 = data[p + 1]!,
    b0 = data[p + W]!,
    b1 = data[p + W + 1]!;
  const top = (t0 << 10) + fx * (t1 - t0);
  const bottom = (b0 << 10) + fx * (b1 - b0);
  return ((top << 10) + ((y >> 6) & 1023) * (bottom - top)) >> 10;
}

/**
 * warpYuv420 for a footprint inside the frame (even output sides), with no edge cases: per 2×2 block of output
 * pixels, four bilinear luma samples and one of each chroma plane at the block's centre. It runs for every face
 * of every frame; within one level of the same sampling in floats (the weights' rounding).
 */
function warpInterior(
  image: Yuv420Image,
  inv: readonly number[],
  width: number,
  height: number,
): Yuv420Image {
  const { width: W, data } = image;
  const { cw, uBase, vBase } = planes(image);
  const out = new Uint8Array(yuv420Bytes(width, height));
  const [a, b, tx, c, d, ty] = inv as [number, number, number, number, number, number];
  const ai = Math.round(a * FIX);
  const bi = Math.round(b * FIX);
  const ci = Math.round(c * FIX);
  const di = Math.round(d * FIX);
  const half = width >> 1;
  const uOut = width * height;
  const vOut = uOut + (uOut >> 2);
  for (let v = 0; v < height; v += 2) {
    // The source position of output (u, v) and, in chroma coordinates ((x − 0.5) / 2: chroma samples sit
    // between their luma pairs), of the 2×2 block's centre.
    const x = b * v + tx;
    const y = d * v + ty;
    let xi = Math.round(x * FIX);
    let yi = Math.round(y * FIX);
    let xc = Math.round(((x + 0.5 * (a + b)) * 0.5 - 0.25) * FIX);
    let yc = Math.round(((y + 0.5 * (c + d)) * 0.5 - 0.25) * FIX);
    let o = v * width;
    let q = (v >> 1) * half;
    for (let u = 0; u < width; u += 2, xi += 2 * ai, yi += 2 * ci, xc += ai, yc += ci, o += 2, q++) {
      out[uOut + q] = (bilinearAt(data, uBase, cw, xc, yc) + 512) >> 10;
      out[vOut + q] = (bilinearAt(data, vBase, cw, xc, yc) + 512) >> 10;
      out[o] = (bilinearAt(data, 0, W, xi, yi) + 512) >> 10;
      out[o + 1] = (bilinearAt(data, 0, W, xi + ai, yi + ci) + 512) >> 10;
      out[o + width] = (bilinearAt(data, 0, W, xi + bi, yi + di) + 512) >> 10;
      out[o + width + 1] = (bilinearAt(data, 0, W, xi + ai + bi, yi + ci + di) + 512) >> 10;
    }
  }
  return { format: "yuv420p", width, height, data: out };
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
  const [b, g, r] = channelSlots(layout, offset, plane);
  const gray = layout.channels === "gray";
  if (W === outWidth && H === outHeight) {
    fillSameSize(image, out, targetWidth, gray, b, g, r);
    return;
  }
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

/**
 * The image at its own size (an aligned face crop, as the embedder gets it), converted as it goes. Chroma is held
 * for each 2×2 block, as the warp sampled it; no block sums, as a 1×1 block needs none.
 */
function fillSameSize(
  image: Yuv420Image,
  out: Float32Array,
  targetWidth: number,
  gray: boolean,
  b: ChannelSlot,
  g: ChannelSlot,
  r: ChannelSlot,
) {
  const { width: W, height: H, data } = image;
  const { cw, uBase, vBase } = planes(image);
  for (let y = 0; y < H; y++) {
    const crow = (y >> 1) * cw;
    const row = y * targetWidth;
    for (let x = 0; x < W; x++) {
      const at = row + x;
      const luma = data[y * W + x]!;
      if (gray) {
        out[b.base + at] = (clamp255(KY * (luma - 16)) - b.mean) * b.inv;
        continue;
      }
      const c = crow + (x >> 1);
      storeTensor(out, at, luma, data[uBase + c]! - 128, data[vBase + c]! - 128, b, g, r);
    }
  }
}

/**
 * The Laplacian's variance over a yuv420p image's luma, on the grey scale of its BGR conversion (full range: the
 * limited range's 16–235 stretched by 1.164), so one sharpness floor serves crops of either format.
 */
export function lumaLaplacianVariance(image: Yuv420Image): number {
  const { width: w, height: h, data } = image;
  let sum = 0,
    sumSq = 0;
  for (let y = 1; y < h - 1; y++) {
    for (let i = y * w + 1, end = y * w + w - 1; i < end; i++) {
      const lap = data[i - 1]! + data[i + 1]! + data[i - w]! + data[i + w]! - 4 * data[i]!;
      sum += lap;
      sumSq += lap * lap;
    }
  }
  const n = Math.max(0, w - 2) * Math.max(0, h - 2);
  return n === 0 ? 0 : (KY * KY * (sumSq - (sum * sum) / n)) / n;
}
