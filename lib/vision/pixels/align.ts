import type { BgrImage, FrameImage } from "./image.ts";
import { footprintInside, isYuv420, warpYuv420 } from "./yuv.ts";
import { type Point } from "../../geometry/index.ts";

/** 2×3 affine matrix [a, b, tx, c, d, ty]: x' = a·x + b·y + tx, y' = c·x + d·y + ty. */
export type Affine = [number, number, number, number, number, number];

/**
 * Least-squares similarity transform (rotation, uniform scale, translation) mapping `src` onto `dst`
 * (Umeyama 1991 without reflection); the standard face alignment to a landmark template.
 */
export function similarityTransform(src: Point[], dst: Point[]): Affine {
  if (src.length !== dst.length || src.length < 2)
    throw new Error("need matching point sets of at least 2 points");
  const n = src.length;
  let sx = 0,
    sy = 0,
    dx = 0,
    dy = 0;
  for (let i = 0; i < n; i++) {
    sx += src[i]![0];
    sy += src[i]![1];
    dx += dst[i]![0];
    dy += dst[i]![1];
  }
  sx /= n;
  sy /= n;
  dx /= n;
  dy /= n;
  // With centred points p (source) and q (target), the optimal a = Σ(p·q)/Σ|p|², b = Σ(p×q)/Σ|p|².
  let dot = 0,
    cross = 0,
    norm = 0;
  for (let i = 0; i < n; i++) {
    const px = src[i]![0] - sx,
      py = src[i]![1] - sy;
    const qx = dst[i]![0] - dx,
      qy = dst[i]![1] - dy;
    dot += px * qx + py * qy;
    cross += px * qy - py * qx;
    norm += px * px + py * py;
  }
  if (norm === 0) throw new Error("source points are all identical");
  const a = dot / norm;
  const b = cross / norm;
  // [x'; y'] = [a −b; b a][x; y] + t
  return [a, -b, dx - (a * sx - b * sy), b, a, dy - (b * sx + a * sy)];
}

export function applyAffine(m: Affine, p: Point): Point {
  return [m[0] * p[0] + m[1] * p[1] + m[2], m[3] * p[0] + m[4] * p[1] + m[5]];
}

export function invertAffine(m: Affine): Affine {
  const [a, b, tx, c, d, ty] = m;
  const det = a * d - b * c;
  if (Math.abs(det) < 1e-12) throw new Error("affine transform is not invertible");
  const ia = d / det,
    ib = -b / det,
    ic = -c / det,
    id = a / det;
  return [ia, ib, -(ia * tx + ib * ty), ic, id, -(ic * tx + id * ty)];
}

/**
 * Warps `image` through `m` (source → output) into a width×height crop, bilinear, black outside. A BGR image
 * gives a BGR crop; a yuv420p frame a yuv420p crop (BGR for an odd-sided one).
 */
export function warpAffine(image: FrameImage, m: Affine, width: number, height: number): FrameImage {
  const inv = invertAffine(m);
  if (isYuv420(image)) return warpYuv420(image, inv, width, height);
  if (footprintInside(image, inv, width, height)) return warpBgrInterior(image, inv, width, height);
  const out = new Uint8Array(width * height * 3);
  const { data, width: W, height: H } = image;
  const stride = W * 3;
  for (let v = 0; v < height; v++) {
    // Walk the row incrementally: the source position advances by the matrix's first column per pixel.
    let x = inv[1] * v + inv[2];
    let y = inv[4] * v + inv[5];
    let o = v * width * 3;
    for (let u = 0; u < width; u++, x += inv[0], y += inv[3], o += 3) {
      const x0 = Math.floor(x);
      const y0 = Math.floor(y);
      if (x0 < -1 || y0 < -1 || x0 >= W || y0 >= H) continue;
      const fx = x - x0;
      const fy = y - y0;
      const w00 = (1 - fx) * (1 - fy);
      const w10 = fx * (1 - fy);
      const w01 = (1 - fx) * fy;
      const w11 = fx * fy;
      const inX0 = x0 >= 0,
        inX1 = x0 + 1 < W,
        inY0 = y0 >= 0,
        inY1 = y0 + 1 < H;
      const p00 = y0 * stride + x0 * 3;
      for (let ch = 0; ch < 3; ch++) {
        let acc = 0;
        if (inY0 && inX0) acc += w00 * data[p00 + ch]!;
        if (inY0 && inX1) acc += w10 * data[p00 + 3 + ch]!;
        if (inY1 && inX0) acc += w01 * data[p00 + stride + ch]!;
        if (inY1 && inX1) acc += w11 * data[p00 + stride + 3 + ch]!;
        out[o + ch] = Math.round(acc);
      }
    }
  }
  return { width, height, data: out };
}

/**
 * warpAffine for a footprint inside the frame (the usual face): the same bilinear sampling with no edge checks,
 * indices truncated (every coordinate is positive), stores rounded and clamped by a clamped view. About three
 * times faster than the general loop; it runs for every face of every JPEG frame from Kafka.
 */
function warpBgrInterior(image: BgrImage, inv: Affine, width: number, height: number): BgrImage {
  const out = new Uint8Array(width * height * 3);
  const px = new Uint8ClampedArray(out.buffer);
  const { data, width: W } = image;
  const stride = W * 3;
  const [a, b, tx, c, d, ty] = inv;
  let o = 0;
  for (let v = 0; v < height; v++) {
    let x = b * v + tx;
    let y = d * v + ty;
    for (let u = 0; u < width; u++, x += a, y += c, o += 3) {
      const x0 = x | 0;
      const y0 = y | 0;
      const fx = x - x0;
      const fy = y - y0;
      const p = y0 * stride + x0 * 3;
      const q = p + stride;
      for (let ch = 0; ch < 3; ch++) {
        const top = data[p + ch]! + fx * (data[p + 3 + ch]! - data[p + ch]!);
        const bottom = data[q + ch]! + fx * (data[q + 3 + ch]! - data[q + ch]!);
        px[o + ch] = top + fy * (bottom - top);
      }
    }
  }
  return { width, height, data: out };
}

export function alignFace(
  image: FrameImage,
  landmarks: Point[],
  template: Point[],
  width: number,
  height: number,
) {
  const transform = similarityTransform(landmarks, template);
  return { crop: warpAffine(image, transform, width, height), transform };
}
