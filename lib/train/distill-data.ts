import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from "node:fs";
import path from "node:path";
import { seededRandom } from "../eval/cluster.ts";
import { degradedJpeg, nameHash, type CameraDegradation } from "../eval/degrade.ts";
import { centralFace } from "../eval/lfw.ts";
import { scanIdentities } from "../eval/faces.ts";
import type { Vision } from "../vision/inference/vision.ts";
import { decodeImage, toBgr } from "../vision/pixels/image.ts";

/**
 * Training pairs for cross-resolution distillation (issue 22): for every photo, its aligned crop as the embedder
 * sees a good photo, and `variants` crops of the same face after a distant camera's degradation. The degraded
 * crops are cut with the clean photo's landmarks, so each pair shows the same face at the same place and only
 * resolution and compression differ; the network learns to map the second onto the first.
 *
 * Everything here is the product's own path (the degradation of `lfw-dev-lowres` with drawn parameters, YuNet, the similarity warp to the embedder's
 * template), so the crops are what the pipeline would hand the embedder. The training step (Python, offline,
 * `scripts/train-embedder/`) reads the files this writes; it never sees an image file.
 */

export interface DistillManifest {
  format: "vigil-distill-1";
  /** The embedder whose template and input size the crops are cut for. */
  embedder: string;
  width: number;
  height: number;
  /** Crops per photo in `crops.u8`: the clean one first, then the degraded ones. */
  perPhoto: number;
  photos: { file: string; identity: string; degradations: CameraDegradation[] }[];
  skipped: { file: string; reason: string }[];
}

/** The draws of issue 22: scale 0.1–0.4, JPEG 20–60, a blur one time in three. */
export function drawDegradation(random: () => number): CameraDegradation {
  return {
    scale: 0.1 + 0.3 * random(),
    quality: 20 + Math.floor(41 * random()),
    blur: random() < 1 / 3 ? 0.3 + 0.7 * random() : 0,
  };
}

/**
 * Writes `crops.u8` (photos × perPhoto crops, packed BGR, height × width × 3 each) and `manifest.json` into
 * `outDir`. Photos where the detector finds no face are skipped and listed.
 */
export async function writeDistillData(
  vision: Vision,
  imagesDir: string,
  outDir: string,
  options: { variants: number; seed: number; limit?: number },
  onProgress: (total: number) => { tick(): void; done(): void },
): Promise<DistillManifest> {
  const embedder = vision.embedder;
  const files = scanIdentities(imagesDir)
    .flatMap((i) => i.files.map((file) => ({ file, identity: i.id })))
    .slice(0, options.limit);
  mkdirSync(outDir, { recursive: true });
  const manifest: DistillManifest = {
    format: "vigil-distill-1",
    embedder: embedder.modelId,
    width: embedder.width,
    height: embedder.height,
    perPhoto: 1 + options.variants,
    photos: [],
    skipped: [],
  };
  const fd = openSync(path.join(outDir, "crops.u8"), "w");
  const bar = onProgress(files.length);
  try {
    for (const { file, identity } of files) {
      const full = path.join(imagesDir, file);
      const image = await decodeImage(full, file);
      const face = centralFace(await vision.analyzer.analyze(image), image);
      bar.tick();
      if (!face) {
        manifest.skipped.push({ file, reason: "no face found in the clean photo" });
        continue;
      }
      // Seeded per photo: a run can be repeated, and a photo's draws do not depend on the others.
      const random = seededRandom(nameHash(file, options.seed));
      const degradations = Array.from({ length: options.variants }, () => drawDegradation(random));
      const crops = [face.crop];
      for (const d of degradations) {
        const degraded = await decodeImage(await degradedJpeg(full, d), file);
        crops.push(vision.analyzer.alignDetection(degraded, face.detection).crop);
      }
      // The file holds packed BGR: a photo's crops already are (toBgr is a no-op for them).
      for (const c of crops) writeSync(fd, toBgr(c).data);
      manifest.photos.push({ file, identity, degradations });
    }
  } finally {
    closeSync(fd);
    bar.done();
  }
  writeFileSync(path.join(outDir, "manifest.json"), JSON.stringify(manifest, null, 1));
  return manifest;
}
