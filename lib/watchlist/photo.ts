import { decodeImage } from "../vision/pixels/image.ts";
import type { Vision } from "../vision/inference/vision.ts";

export type PhotoEmbedding =
  { ok: true; vector: Float32Array; modelId: string } | { ok: false; reason: string };

/**
 * A photo that must show exactly one face passing the quality gate, embedded like a live face. Used for
 * enrolment, search-by-photo and exclusions, so all three accept and refuse the same photos.
 */
export async function embedSingleFace(
  vision: Vision,
  file: string | Uint8Array,
  label: string,
): Promise<PhotoEmbedding> {
  let image;
  try {
    image = await decodeImage(file, label);
  } catch (err) {
    return {
      ok: false,
      reason: `not an image: ${(err as Error).message.replace(`${label} is not a readable image: `, "")}`,
    };
  }
  const faces = await vision.analyzer.analyze(image);
  if (faces.length === 0) return { ok: false, reason: "no face found" };
  if (faces.length > 1)
    return { ok: false, reason: `${faces.length} faces found; the photo must show one person` };
  const face = faces[0]!;
  if (face.quality.reasons.length > 0)
    return { ok: false, reason: `below the quality gate: ${face.quality.reasons.join("; ")}` };
  const [vector] = await vision.embedder.embed([face.crop]);
  return { ok: true, vector: vector!, modelId: vision.embedder.modelId };
}
