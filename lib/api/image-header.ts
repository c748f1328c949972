/**
 * Image dimensions read from the file's own header, without a decoder: the pixel-count check must come before
 * any library allocates a frame (a 50,000 × 50,000 PNG is a few KB on the wire and 7.5 GB decoded).
 */
export type ImageHeader =
  | { ok: true; format: "jpeg" | "png" | "webp"; width: number; height: number }
  | { ok: false; reason: string };

const be16 = (b: Uint8Array, i: number) => (b[i]! << 8) | b[i + 1]!;
const le16 = (b: Uint8Array, i: number) => b[i]! | (b[i + 1]! << 8);
const le24 = (b: Uint8Array, i: number) => b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16);
const be32 = (b: Uint8Array, i: number) =>
  ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
const ascii = (b: Uint8Array, i: number, n: number) => String.fromCharCode(...b.subarray(i, i + n));

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export function readImageHeader(bytes: Uint8Array): ImageHeader {
  if (bytes.length >= 8 && PNG_SIGNATURE.every((v, i) => bytes[i] === v)) return png(bytes);
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return jpeg(bytes);
  if (bytes.length >= 12 && ascii(bytes, 0, 4) === "RIFF" && ascii(bytes, 8, 4) === "WEBP")
    return webp(bytes);
  return { ok: false, reason: "not a JPEG, PNG or WebP image" };
}

function sized(format: "jpeg" | "png" | "webp", width: number, height: number): ImageHeader {
  if (width <= 0 || height <= 0)
    return { ok: false, reason: `${format} header gives a size of ${width}×${height}` };
  return { ok: true, format, width, height };
}

function png(b: Uint8Array): ImageHeader {
  // The first chunk must be IHDR: length 13, then width and height as 32-bit big-endian.
  if (b.length < 24 || ascii(b, 12, 4) !== "IHDR") return { ok: false, reason: "PNG without an IHDR header" };
  return sized("png", be32(b, 16), be32(b, 20));
}

/** SOFn markers carry the frame size; DHT (C4), JPG (C8) and DAC (CC) share the range but do not. */
const isSof = (m: number) => m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;

function jpeg(b: Uint8Array): ImageHeader {
  let i = 2;
  while (i < b.length) {
    if (b[i] !== 0xff) return { ok: false, reason: `JPEG marker expected at byte ${i}` };
    while (i < b.length && b[i] === 0xff) i++; // fill bytes
    const marker = b[i++];
    if (marker === undefined) break;
    // Markers without a length field.
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) continue;
    if (marker === 0xd9 || marker === 0xda) return { ok: false, reason: "JPEG without a frame header" };
    if (i + 2 > b.length) break;
    const length = be16(b, i);
    if (length < 2) return { ok: false, reason: `JPEG segment of length ${length} at byte ${i}` };
    if (isSof(marker)) {
      if (i + 7 > b.length) break;
      // length(2) precision(1) height(2) width(2); EXIF thumbnails sit inside APP1 and are skipped above.
      return sized("jpeg", be16(b, i + 5), be16(b, i + 3));
    }
    i += length;
  }
  return { ok: false, reason: "JPEG ends before its frame header" };
}

function webp(b: Uint8Array): ImageHeader {
  if (b.length < 30) return { ok: false, reason: "WebP too short for its header" };
  const chunk = ascii(b, 12, 4);
  if (chunk === "VP8X") return sized("webp", le24(b, 24) + 1, le24(b, 27) + 1);
  if (chunk === "VP8 ") {
    if (b[23] !== 0x9d || b[24] !== 0x01 || b[25] !== 0x2a)
      return { ok: false, reason: "WebP VP8 start code missing" };
    return sized("webp", le16(b, 26) & 0x3fff, le16(b, 28) & 0x3fff);
  }
  if (chunk === "VP8L") {
    if (b[20] !== 0x2f) return { ok: false, reason: "WebP VP8L signature missing" };
    const bits = b[21]! | (b[22]! << 8) | (b[23]! << 16) | (b[24]! << 24);
    return sized("webp", (bits & 0x3fff) + 1, ((bits >>> 14) & 0x3fff) + 1);
  }
  return { ok: false, reason: `WebP with an unknown first chunk ${JSON.stringify(chunk)}` };
}
