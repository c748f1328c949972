import { decodeImage, resizeImage, type FrameImage } from "../vision/pixels/image.ts";
import type { Vision } from "../vision/inference/vision.ts";

export type PhotoEmbedding =
  | {
      ok: true;
      vector: Float32Array;
      modelId: string;
      /** The aligned face the vector was computed from: enrolment keeps it for operators to look at. */
      face: FrameImage;
    }
  | { ok: false; reason: string };

export type VisionParts = Pick<Vision, "analyzer" | "embedder">;

/** A photo on disk, or uploaded bytes with the name the operator gave them. */
export type PhotoInput = string | { name: string; bytes: Uint8Array };

export const photoName = (photo: PhotoInput) => (typeof photo === "string" ? photo : photo.name);
const photoData = (photo: PhotoInput) => (typeof photo === "string" ? photo : photo.bytes);

/**
 * A photo that must show exactly one face passing the quality gate, embedded like a live face. Used for
 * enrolment, search-by-photo and exclusions, so all three accept and refuse the same photos.
 */
export async function embedSingleFace(
  vision: VisionParts,
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
  return { ok: true, vector: vector!, modelId: vision.embedder.modelId, face: face.crop };
}

/** How the use-case services turn pictures into vectors; the models load on first use. */
export interface PhotoEmbedder {
  /** A photo that must show exactly one face passing the quality gate (see `embedSingleFace`). */
  embedPhoto(photo: PhotoInput): Promise<PhotoEmbedding>;
  /**
   * A face crop already aligned to the embedder's template (an alert's crop): embedded as it is, since running
   * the detector again on a tight 112 px crop often finds nothing.
   */
  embedAlignedCrop(jpeg: Uint8Array, label: string): Promise<PhotoEmbedding>;
}

/** `vision` may be a loader, so commands that never look at a photo (`vigil people`) never load models. */
export function photoEmbedder(vision: VisionParts | (() => Promise<VisionParts>)): PhotoEmbedder {
  let loaded: Promise<VisionParts> | undefined;
  const get = () => (loaded ??= typeof vision === "function" ? vision() : Promise.resolve(vision));
  return {
    async embedPhoto(photo) {
      return embedSingleFace(await get(), photoData(photo), photoName(photo));
    },
    async embedAlignedCrop(jpeg, label) {
      const { embedder } = await get();
      let image;
      try {
        image = await decodeImage(jpeg, label);
      } catch (err) {
        return { ok: false, reason: `not an image: ${(err as Error).message}` };
      }
      const face = await resizeImage(image, embedder.width, embedder.height);
      const [vector] = await embedder.embed([face]);
      return { ok: true, vector: vector!, modelId: embedder.modelId, face };
    },
  };
}
