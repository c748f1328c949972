import sharp from "sharp";

/**
 * How a distant surveillance camera sees a face, the recipe of `lfw-dev-lowres` (see the data README): by a
 * seeded draw an image is either kept (1 in 5) or shrunk to 12, 16, 20 or 30 % of its size with a cubic
 * filter, JPEG-compressed at quality 35, scaled back up with a cubic filter and stored as JPEG quality 90.
 * Applied to a copy of `lfw-dev/images`, this reproduces the published low-resolution files byte for byte for
 * the same draw (checked here on images of every scale).
 */
export const SURVEILLANCE_SCALES = [1, 0.3, 0.2, 0.16, 0.12] as const;

export type Degradation = "none" | "surveillance";

/** FNV-1a of the text, mixed with the seed: each file's draw depends on its name, not on the order of files. */
export function nameHash(text: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** mulberry32: a small, well-mixed 32-bit generator; enough for drawing a scale per image. */
function mulberry32(state: number): () => number {
  let a = state >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The scale drawn for `key` (usually the image's path relative to the set): 1 means kept as it is. */
export function surveillanceScale(key: string, seed: number): number {
  const draw = mulberry32(nameHash(key, seed))();
  return SURVEILLANCE_SCALES[Math.min(SURVEILLANCE_SCALES.length - 1, Math.floor(draw * 5))]!;
}

/** A distant camera's view of a photo, as drawn: the recipe above at one scale, or issue 22's training draws. */
export interface CameraDegradation {
  /** Share of the image's size it is shrunk to. */
  scale: number;
  /** JPEG quality of the shrunk image. */
  quality: number;
  /** Gaussian blur (σ in shrunk pixels) before compression: focus and motion; 0 for none. */
  blur: number;
}

/**
 * The photo shrunk with a cubic filter, blurred when asked, JPEG-compressed, scaled back to its size with a cubic
 * filter and stored as JPEG quality 90.
 */
export async function degradedJpeg(file: string, d: CameraDegradation): Promise<Uint8Array> {
  const meta = await sharp(file).metadata();
  const width = meta.width!,
    height = meta.height!;
  let small = sharp(file).resize(
    Math.max(1, Math.round(width * d.scale)),
    Math.max(1, Math.round(height * d.scale)),
    { kernel: "cubic" },
  );
  // sharp blurs after it resizes, whatever the order of the calls: the blur is in shrunk pixels. Its default mask
  // (amplitude cut-off 0.2, integer weights) leaves a σ below about 0.57 a single tap, which would not blur.
  if (d.blur > 0) small = small.blur({ sigma: d.blur, minAmplitude: 0.01, precision: "float" });
  const jpeg = await small.jpeg({ quality: d.quality }).toBuffer();
  const back = await sharp(jpeg).resize(width, height, { kernel: "cubic" }).jpeg({ quality: 90 }).toBuffer();
  return new Uint8Array(back);
}

/** The encoded image a probe is read from: the file's bytes when kept, else the degraded JPEG. */
export async function degradeImage(
  file: string,
  scale: number,
): Promise<{ bytes: Uint8Array | string; scale: number }> {
  if (scale >= 1) return { bytes: file, scale: 1 };
  return { bytes: await degradedJpeg(file, { scale, quality: 35, blur: 0 }), scale };
}
