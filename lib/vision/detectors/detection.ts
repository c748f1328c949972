import type { FrameImage } from "../image.ts";
import type { Point } from "../registry.ts";

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface Detection {
  box: Box;
  score: number;
  /** Five points: eye left/right (as seen in the image), nose tip, mouth corner left/right. */
  landmarks: Point[];
}

export interface FaceDetector {
  readonly modelId: string;
  detect(image: FrameImage): Promise<Detection[]>;
}

export function iou(a: Box, b: Box): number {
  const x1 = Math.max(a.x, b.x);
  const y1 = Math.max(a.y, b.y);
  const x2 = Math.min(a.x + a.width, b.x + b.width);
  const y2 = Math.min(a.y + a.height, b.y + b.height);
  const inter = Math.max(0, x2 - x1) * Math.max(0, y2 - y1);
  const union = a.width * a.height + b.width * b.height - inter;
  return union <= 0 ? 0 : inter / union;
}

/** Greedy non-maximum suppression, highest score first. */
export function nms<T extends { box: Box; score: number }>(items: T[], iouThreshold: number): T[] {
  const sorted = [...items].sort((a, b) => b.score - a.score);
  const kept: T[] = [];
  for (const item of sorted) if (kept.every((k) => iou(k.box, item.box) <= iouThreshold)) kept.push(item);
  return kept;
}
