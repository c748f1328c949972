import type { FrameImage } from "../../pixels/image.ts";
import { isYuv420 } from "../../pixels/yuv.ts";
import { iou, nms, type Box } from "../../../geometry/index.ts";
import type { DetectOptions, Detection, FaceDetector } from "./detection.ts";

/**
 * How a frame larger than the detector's input finds its small faces (config `detect.smallFaces`, per camera
 * `cameras[].smallFaces`): `off` detects once on the resized frame; `second-pass` looks again at full
 * resolution, in a few fixed squares around the faces the first pass found small (faces in a crowd come in
 * clumps, and a face found small is found with coarse landmarks); `tiles` covers the whole frame in
 * overlapping tiles at full resolution.
 */
export interface SmallFaceOptions {
  mode: "off" | "second-pass" | "tiles";
  /** second-pass: a first-pass face narrower than this (frame pixels) gets a full-resolution look around it. */
  below: number;
  /** second-pass: side of each square looked at (frame pixels); one size, so the detector reuses its tensors. */
  region: number;
  /** second-pass: at most this many squares per frame (the most crowded corners first). */
  maxRegions: number;
  /** tiles: columns × rows over the frame, each tile overlapping its neighbours by `overlap` of its size. */
  tiles: { cols: number; rows: number; overlap: number };
}

interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/**
 * `r` moved to even coordinates and sizes inside the frame, so a yuv420p frame's half-size chroma planes crop
 * with it exactly.
 */
export function evenRect(r: Rect, frame: { width: number; height: number }): Rect {
  const x = Math.max(0, r.x & ~1);
  const y = Math.max(0, r.y & ~1);
  return {
    x,
    y,
    width: Math.min(frame.width - x, r.width + (r.width & 1)) & ~1,
    height: Math.min(frame.height - y, r.height + (r.height & 1)) & ~1,
  };
}

/** The pixels of `r` (even-aligned: see evenRect) as a frame of their own. */
export function cropFrame(image: FrameImage, r: Rect): FrameImage {
  const { x, y, width: w, height: h } = r;
  if ((x | y | w | h) & 1) throw new Error(`crop ${w}×${h} at ${x},${y} is not even-aligned`);
  const W = image.width;
  if (isYuv420(image)) {
    const out = new Uint8Array(w * h + 2 * (w / 2) * (h / 2));
    for (let row = 0; row < h; row++)
      out.set(image.data.subarray((y + row) * W + x, (y + row) * W + x + w), row * w);
    const cw = W / 2;
    const uBase = W * image.height;
    const vBase = uBase + cw * (image.height / 2);
    const ow = w / 2;
    for (let row = 0; row < h / 2; row++) {
      const src = (y / 2 + row) * cw + x / 2;
      out.set(image.data.subarray(uBase + src, uBase + src + ow), w * h + row * ow);
      out.set(image.data.subarray(vBase + src, vBase + src + ow), w * h + (h / 2) * ow + row * ow);
    }
    return { format: "yuv420p", width: w, height: h, data: out };
  }
  const out = new Uint8Array(w * h * 3);
  for (let row = 0; row < h; row++)
    out.set(image.data.subarray(((y + row) * W + x) * 3, ((y + row) * W + x + w) * 3), row * w * 3);
  return { width: w, height: h, data: out };
}

/**
 * Squares of `side` around the small faces, most crowded first: each small face not already well inside a
 * square gets one centred on it (kept inside the frame), so a clump of faces shares one look.
 */
export function smallFaceRegions(
  faces: Detection[],
  frame: { width: number; height: number },
  options: Pick<SmallFaceOptions, "below" | "region" | "maxRegions">,
): Rect[] {
  const side = { w: Math.min(options.region, frame.width), h: Math.min(options.region, frame.height) };
  const small = faces.filter((f) => f.box.width < options.below);
  const centre = (b: Box) => [b.x + b.width / 2, b.y + b.height / 2] as const;
  const inside = (r: Rect, [cx, cy]: readonly [number, number], margin: number) =>
    cx >= r.x + margin && cx <= r.x + r.width - margin && cy >= r.y + margin && cy <= r.y + r.height - margin;
  // Faces with the most small neighbours first: their square finds the most.
  const near = (f: Detection) =>
    small.filter((g) => Math.hypot(...centre(f.box).map((v, i) => v - centre(g.box)[i]!)) < side.w / 2)
      .length;
  const order = [...small].sort((a, b) => near(b) - near(a));
  const regions: Rect[] = [];
  for (const f of order) {
    if (regions.length >= options.maxRegions) break;
    const c = centre(f.box);
    if (regions.some((r) => inside(r, c, options.below))) continue;
    const x = Math.round(Math.min(Math.max(0, c[0] - side.w / 2), frame.width - side.w));
    const y = Math.round(Math.min(Math.max(0, c[1] - side.h / 2), frame.height - side.h));
    regions.push({ x, y, width: side.w, height: side.h });
  }
  return regions;
}

/** Overlapping tiles covering the frame. */
export function frameTiles(
  frame: { width: number; height: number },
  tiles: SmallFaceOptions["tiles"],
): Rect[] {
  const tw = Math.ceil(frame.width / (tiles.cols - (tiles.cols - 1) * tiles.overlap));
  const th = Math.ceil(frame.height / (tiles.rows - (tiles.rows - 1) * tiles.overlap));
  const out: Rect[] = [];
  for (let r = 0; r < tiles.rows; r++)
    for (let c = 0; c < tiles.cols; c++) {
      const x = tiles.cols === 1 ? 0 : Math.round(((frame.width - tw) * c) / (tiles.cols - 1));
      const y = tiles.rows === 1 ? 0 : Math.round(((frame.height - th) * r) / (tiles.rows - 1));
      out.push({ x, y, width: Math.min(tw, frame.width), height: Math.min(th, frame.height) });
    }
  return out;
}

/**
 * A region's faces in frame coordinates, without those cut by its edge (where the region's edge is not the
 * frame's): a face half in a region is found whole by the pass or the neighbour that sees all of it.
 */
function regionFaces(found: Detection[], r: Rect, frame: { width: number; height: number }): Detection[] {
  const margin = 2;
  return found
    .map((d) => ({
      ...d,
      box: { ...d.box, x: d.box.x + r.x, y: d.box.y + r.y },
      landmarks: d.landmarks.map(([x, y]) => [x + r.x, y + r.y] as [number, number]),
    }))
    .filter(({ box: b }) => {
      const cutLeft = b.x < r.x + margin && r.x > 0;
      const cutTop = b.y < r.y + margin && r.y > 0;
      const cutRight = b.x + b.width > r.x + r.width - margin && r.x + r.width < frame.width;
      const cutBottom = b.y + b.height > r.y + r.height - margin && r.y + r.height < frame.height;
      return !(cutLeft || cutTop || cutRight || cutBottom);
    });
}

/**
 * Detection with the small-face plan applied. Full-resolution finds replace the first pass's coarse finds of
 * the same face (their landmarks, which alignment is built on, are measured on three times the pixels).
 */
export async function detectSmallFaces(
  detector: FaceDetector,
  image: FrameImage,
  detect: Required<DetectOptions>,
  plan: SmallFaceOptions | undefined,
  nmsIou: number,
): Promise<Detection[]> {
  // Already at full resolution: nothing finer to look at.
  const fullSize = detect.maxSide >= Math.max(image.width, image.height);
  if (!plan || plan.mode === "off" || fullSize) return detector.detect(image, detect);
  const first = plan.mode === "tiles" ? [] : await detector.detect(image, detect);
  const regions = (
    plan.mode === "tiles" ? frameTiles(image, plan.tiles) : smallFaceRegions(first, image, plan)
  ).map((r) => evenRect(r, image));
  const fine: Detection[] = [];
  for (const r of regions) {
    const found = await detector.detect(cropFrame(image, r), { maxSide: Math.max(r.width, r.height) });
    fine.push(...regionFaces(found, r, image));
  }
  const merged = nms(fine, nmsIou);
  const coarse = first.filter((d) => !merged.some((m) => iou(m.box, d.box) > nmsIou));
  return [...merged, ...coarse];
}
