import { readdirSync, statSync } from "node:fs";
import path from "node:path";
import type { QualityScores } from "../contracts/index.ts";
import type { Vision } from "../vision/inference/vision.ts";
import { decodeImage, type FrameImage } from "../vision/pixels/image.ts";
import { degradeImage } from "./degrade.ts";
import { centralFace } from "./lfw.ts";

export interface Identity {
  id: string;
  /** Paths relative to the images folder, sorted. */
  files: string[];
}

const IMAGE = /\.(jpe?g|png|webp|bmp|tiff?)$/i;

/** A folder-per-identity image set (LFW's layout), identities and their images in sorted order. */
export function scanIdentities(imagesDir: string): Identity[] {
  return readdirSync(imagesDir)
    .sort()
    .filter((d) => statSync(path.join(imagesDir, d)).isDirectory())
    .map((id) => ({
      id,
      files: readdirSync(path.join(imagesDir, id))
        .sort()
        .filter((f) => IMAGE.test(f))
        .map((f) => path.join(id, f)),
    }))
    .filter((i) => i.files.length > 0);
}

export interface FaceItem {
  /** Path relative to the images folder; also the key of the degradation draw. */
  file: string;
  /** 1 = as stored; below 1 the surveillance recipe at that scale. */
  scale: number;
}

export interface ExtractedFace extends FaceItem {
  /** Undefined when the detector found no face: a camera would not have seen one either. */
  vector?: Float32Array;
  quality?: QualityScores;
  /** The photo quality gate's reasons; empty when the face passes it. */
  gateReasons: string[];
  /** Live video's gate (quality.ts): a face failing it never reaches the match stage. */
  liveReasons: string[];
}

type OnProgress = (phase: string, total: number) => { tick(): void; done(): void };

/**
 * The central face of each image through the product's detect → align → quality → embed path (the one live
 * frames and enrolment photos take), from the image as stored or degraded.
 */
export async function extractFaces(
  vision: Vision,
  imagesDir: string,
  items: FaceItem[],
  phase: string,
  onProgress: OnProgress,
): Promise<ExtractedFace[]> {
  const out: ExtractedFace[] = [];
  const pending: { index: number; crop: FrameImage }[] = [];
  const bar = onProgress(phase, items.length);
  const flush = async () => {
    if (pending.length === 0) return;
    const vectors = await vision.embedder.embed(pending.map((p) => p.crop));
    pending.forEach((p, k) => (out[p.index]!.vector = vectors[k]!));
    pending.length = 0;
  };
  for (const item of items) {
    const full = path.join(imagesDir, item.file);
    const { bytes } = await degradeImage(full, item.scale);
    const image = await decodeImage(bytes, item.file);
    const face = centralFace(await vision.analyzer.analyze(image), image);
    out.push({
      ...item,
      quality: face?.quality.scores,
      gateReasons: face?.quality.reasons ?? [],
      liveReasons: face?.quality.liveReasons ?? [],
    });
    if (face) pending.push({ index: out.length - 1, crop: face.crop });
    if (pending.length >= 32) await flush();
    bar.tick();
  }
  await flush();
  bar.done();
  return out;
}
