import sharp from "sharp";
import {
  fillTensorFromYuv420,
  isYuv420,
  rgbToYuv420,
  yuv420Bytes,
  yuv420ToBgr,
  type Yuv420Image,
} from "./yuv.ts";

/** Packed 8-bit BGR pixels: the one in-memory image format of the pipeline (what ffmpeg's bgr24 gives). */
export interface BgrImage {
  /** Never "yuv420p": so a frame or crop of that format is not taken for BGR by mistake. */
  format?: "bgr24";
  width: number;
  height: number;
  data: Uint8Array;
}

/** What a detector and the aligner take: a photo's BGR pixels or a live frame as the decoder gave it. */
export type FrameImage = BgrImage | Yuv420Image;

/**
 * A frame still compressed, as it crosses Kafka (`ingest.frameEncoding: jpeg`): decoded where it is analysed, in
 * a vision worker, so the thread that routes records never touches its pixels.
 */
export interface EncodedFrame {
  format: "jpeg";
  width: number;
  height: number;
  data: Uint8Array;
  /** For the error when it cannot be decoded (camera#seq). */
  label: string;
}

export function isEncoded(image: object): image is EncodedFrame {
  return "format" in image && image.format === "jpeg";
}

/**
 * Decodes a compressed frame and checks it is the size its header says. A colour frame with even sides (every
 * frame ingest makes) comes out yuv420p, as a live frame in one process does, so it takes the same path from here:
 * the detector's frame-input graph and the integer warp. Anything else decodes as a photo does. A camera frame
 * carries no EXIF orientation to honour (ingest's encoder writes none; rotation is the camera's setting).
 */
export async function decodeFrame(frame: EncodedFrame): Promise<FrameImage> {
  const label = `frame ${frame.label}`;
  let decoded: { data: Buffer; info: sharp.OutputInfo };
  try {
    // Read top to bottom, as a JPEG decodes anyway: 5–7 % less CPU than libvips' random access here.
    decoded = await sharp(frame.data, { failOn: "error", sequentialRead: true })
      .raw()
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new ImageDecodeError(`${label} is not a readable image: ${(err as Error).message}`);
  }
  const { width, height, channels } = decoded.info;
  if (width !== frame.width || height !== frame.height) {
    throw new ImageDecodeError(
      `${label}: JPEG is ${width}×${height}, header says ${frame.width}×${frame.height}`,
    );
  }
  if (channels === 3 && width % 2 === 0 && height % 2 === 0) {
    const rgb = new Uint8Array(decoded.data.buffer, decoded.data.byteOffset, decoded.data.byteLength);
    return rgbToYuv420(rgb, width, height);
  }
  return decodeImage(frame.data, label);
}

/**
 * The aligned crop a face or embedding message carries, as an image. A blob whose length does not fit its size
 * and format is refused, so a malformed message fails alone instead of being read past its end.
 */
export function messageCrop(m: {
  cropSize: { width: number; height: number };
  cropFormat?: "bgr24" | "yuv420p";
  crop: Uint8Array;
}): FrameImage {
  const { width, height } = m.cropSize;
  const yuv = m.cropFormat === "yuv420p";
  const expected = yuv ? yuv420Bytes(width, height) : width * height * 3;
  if ((yuv && (width % 2 !== 0 || height % 2 !== 0)) || m.crop.length !== expected) {
    throw new RangeError(
      `crop of ${m.crop.length} bytes does not hold a ${width}×${height} ${m.cropFormat ?? "bgr24"} image (${expected} bytes)`,
    );
  }
  return yuv ? { format: "yuv420p", width, height, data: m.crop } : { width, height, data: m.crop };
}

/** What a message says of a crop's layout: nothing for BGR, so those messages stay as older producers made them. */
export function cropFormatOf(image: FrameImage): { cropFormat?: "yuv420p" } {
  return isYuv420(image) ? { cropFormat: "yuv420p" } : {};
}

export function toBgr(image: FrameImage): BgrImage {
  return isYuv420(image) ? yuv420ToBgr(image) : image;
}

export class ImageDecodeError extends Error {
  override name = "ImageDecodeError";
}

function swapRB(data: Uint8Array): Uint8Array {
  for (let i = 0; i < data.length; i += 3) {
    const r = data[i]!;
    data[i] = data[i + 2]!;
    data[i + 2] = r;
  }
  return data;
}

/** Decodes any image sharp reads (JPEG, PNG, WebP…), honouring EXIF orientation. */
export async function decodeImage(input: Uint8Array | string, label = "image"): Promise<BgrImage> {
  try {
    const { data, info } = await sharp(input, { failOn: "error" })
      .rotate()
      .removeAlpha()
      .toColourspace("srgb")
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`unexpected ${info.channels} channels`);
    return { width: info.width, height: info.height, data: swapRB(new Uint8Array(data)) };
  } catch (err) {
    throw new ImageDecodeError(`${label} is not a readable image: ${(err as Error).message}`);
  }
}

/** A crop or frame as JPEG; a yuv420p one is converted to BGR first (only what someone will look at is). */
export async function encodeJpeg(frame: FrameImage, quality = 85): Promise<Uint8Array> {
  const image = toBgr(frame);
  const rgb = swapRB(Uint8Array.from(image.data));
  return new Uint8Array(
    await sharp(rgb, { raw: { width: image.width, height: image.height, channels: 3 } })
      .jpeg({ quality })
      .toBuffer(),
  );
}

export async function encodePng(frame: FrameImage): Promise<Uint8Array> {
  const image = toBgr(frame);
  const rgb = swapRB(Uint8Array.from(image.data));
  return new Uint8Array(
    await sharp(rgb, { raw: { width: image.width, height: image.height, channels: 3 } })
      .png()
      .toBuffer(),
  );
}

export async function resizeImage(image: BgrImage, width: number, height: number): Promise<BgrImage> {
  if (width === image.width && height === image.height) return image;
  const data = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .resize(width, height, { fit: "fill", kernel: "linear" })
    .raw()
    .toBuffer();
  return { width, height, data: new Uint8Array(data) };
}

export function flipHorizontal(image: FrameImage): FrameImage {
  if (isYuv420(image)) return flipYuv420(image);
  const { width, height, data } = image;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < height; y++) {
    const row = y * width * 3;
    for (let x = 0; x < width; x++) {
      const s = row + x * 3;
      const d = row + (width - 1 - x) * 3;
      out[d] = data[s]!;
      out[d + 1] = data[s + 1]!;
      out[d + 2] = data[s + 2]!;
    }
  }
  return { width, height, data: out };
}

function flipYuv420(image: Yuv420Image): Yuv420Image {
  const { width, height, data } = image;
  const out = new Uint8Array(data.length);
  // The luma plane's rows, then the two chroma planes' rows (half as long), reversed in place of each other.
  const rows: [number, number, number][] = [
    [0, width, height],
    [width * height, width / 2, height],
  ];
  for (const [base, w, n] of rows) {
    for (let r = 0; r < n; r++) {
      const row = base + r * w;
      for (let x = 0; x < w; x++) out[row + w - 1 - x] = data[row + x]!;
    }
  }
  return { ...image, data: out };
}

/** Grey levels of a BGR image, into `out` when given (at least width × height long). */
export function toGray(image: BgrImage, out = new Float32Array(image.width * image.height)): Float32Array {
  for (let i = 0, p = 0; i < image.width * image.height; i++, p += 3) {
    out[i] = 0.114 * image.data[p]! + 0.587 * image.data[p + 1]! + 0.299 * image.data[p + 2]!;
  }
  return out;
}

export interface TensorLayout {
  channels: "bgr" | "rgb" | "gray";
  mean: [number, number, number];
  std: [number, number, number];
}

/**
 * Writes an image into a float NCHW tensor slot, in the model's channel order and normalisation.
 * `target` may be larger than the image (zero padding at the right and bottom, as detectors expect).
 */
export function fillTensor(
  image: FrameImage,
  layout: TensorLayout,
  out: Float32Array,
  offset: number,
  targetWidth = image.width,
  targetHeight = image.height,
) {
  if (isYuv420(image)) {
    fillTensorFromYuv420(image, image.width, image.height, layout, out, offset, targetWidth, targetHeight);
    return;
  }
  const plane = targetWidth * targetHeight;
  const { data, width, height } = image;
  if (layout.channels === "gray") {
    const gray = toGray(image);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        out[offset + y * targetWidth + x] = (gray[y * width + x]! - layout.mean[0]) / layout.std[0];
      }
    }
    return;
  }
  // Source bytes are B,G,R; pick per output channel.
  const order = layout.channels === "bgr" ? [0, 1, 2] : [2, 1, 0];
  for (let c = 0; c < 3; c++) {
    const src = order[c]!;
    const mean = layout.mean[c]!;
    const inv = 1 / layout.std[c]!;
    const base = offset + c * plane;
    for (let y = 0; y < height; y++) {
      const row = base + y * targetWidth;
      let p = y * width * 3 + src;
      for (let x = 0; x < width; x++, p += 3) out[row + x] = (data[p]! - mean) * inv;
    }
  }
}

/** Resizes any frame to width×height into a tensor slot (zero padding up to the target size, as in fillTensor). */
export async function fillResizedTensor(
  image: FrameImage,
  width: number,
  height: number,
  layout: TensorLayout,
  out: Float32Array,
  offset: number,
  targetWidth = width,
  targetHeight = height,
) {
  if (isYuv420(image)) {
    fillTensorFromYuv420(image, width, height, layout, out, offset, targetWidth, targetHeight);
    return;
  }
  fillTensor(await resizeImage(image, width, height), layout, out, offset, targetWidth, targetHeight);
}
