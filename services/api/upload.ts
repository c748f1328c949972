import { createHash } from "node:crypto";
import path from "node:path";
import type { FastifyRequest } from "fastify";
import sharp from "sharp";
import type { z } from "zod";
import { readImageHeader } from "../../lib/api/image-header.ts";

/** A refused upload: the status says which rule (413 too large, 415 not an image, 422 unreadable). */
export class UploadError extends Error {
  override name = "UploadError";
  constructor(
    readonly statusCode: 400 | 413 | 415 | 422,
    message: string,
  ) {
    super(message);
  }
}

export interface UploadLimits {
  maxBytes: number;
  maxFiles: number;
  maxPixels: number;
}

export interface CheckedPhoto {
  name: string;
  bytes: Uint8Array;
  format: string;
  width: number;
  height: number;
  /** For the audit log: which photo, without keeping it. */
  sha256: string;
}

const MB = (n: number) => `${(n / 1024 / 1024).toFixed(n < 1024 * 1024 ? 2 : 0)} MiB`;
const MP = (n: number) => `${(n / 1e6).toFixed(1)} megapixels`;

/** The operator's file name, reduced to a plain base name (it becomes part of an enrolled photo's id). */
function safeName(filename: string | undefined, index: number): string {
  const base = path.basename((filename ?? "").replace(/\\/g, "/"));
  const clean = base
    .replace(/\p{Cc}/gu, "")
    .slice(0, 200)
    .trim();
  return clean && clean !== "." && clean !== ".." ? clean : `upload-${index + 1}`;
}

/**
 * Everything short of finding a face: the size from the header against the pixel limit before a single pixel
 * is decoded, then one decode (at a thumbnail's size, so the memory stays small) that fails on truncated or
 * corrupt data. Photos that pass are then embedded, decoded again at full size by the use-case service.
 */
export async function checkPhoto(
  name: string,
  bytes: Uint8Array,
  limits: UploadLimits,
): Promise<CheckedPhoto> {
  if (bytes.length === 0) throw new UploadError(422, `${name}: the file is empty`);
  if (bytes.length > limits.maxBytes)
    throw new UploadError(413, `${name}: ${MB(bytes.length)} is over the ${MB(limits.maxBytes)} limit`);
  const header = readImageHeader(bytes);
  if (!header.ok) {
    const status = /^not a JPEG/.test(header.reason) ? 415 : 422;
    throw new UploadError(status, `${name}: ${header.reason}`);
  }
  const pixels = header.width * header.height;
  if (pixels > limits.maxPixels)
    throw new UploadError(
      413,
      `${name}: ${header.width}×${header.height} is ${MP(pixels)}, over the ${MP(limits.maxPixels)} limit`,
    );
  try {
    // limitInputPixels again, in case a format's header and its decoder disagree about the size.
    await sharp(bytes, { failOn: "error", limitInputPixels: limits.maxPixels })
      .resize(64, 64, { fit: "inside" })
      .raw()
      .toBuffer();
  } catch (err) {
    throw new UploadError(422, `${name}: not a readable ${header.format} image: ${(err as Error).message}`);
  }
  return {
    name,
    bytes,
    format: header.format,
    width: header.width,
    height: header.height,
    sha256: createHash("sha256").update(bytes).digest("hex"),
  };
}

export interface PhotoForm<T> {
  fields: T;
  photos: CheckedPhoto[];
}

/**
 * A multipart form of fields and photos, read whole and checked before the route does anything with it: a
 * request with one bad file is refused as a whole, so nothing is written for it.
 */
export async function readPhotoForm<S extends z.ZodType>(
  request: FastifyRequest,
  fieldsSchema: S,
  limits: UploadLimits,
  options: { minPhotos?: number; maxPhotos?: number } = {},
): Promise<PhotoForm<z.output<S>>> {
  if (!request.isMultipart())
    throw new UploadError(400, "send the photos as multipart/form-data (a field named photo per file)");
  const maxPhotos = Math.min(options.maxPhotos ?? limits.maxFiles, limits.maxFiles);
  const raw: Record<string, string | string[]> = {};
  const files: { name: string; bytes: Uint8Array }[] = [];
  const parts = request.parts({
    limits: {
      fileSize: limits.maxBytes,
      files: maxPhotos,
      fields: 50,
      fieldSize: 10_000,
      parts: maxPhotos + 50,
    },
  });
  for await (const part of parts) {
    if (part.type === "file") {
      // Throws (413) as soon as the stream passes fileSize: the rest of the file is never buffered.
      const bytes = await part.toBuffer();
      files.push({ name: safeName(part.filename, files.length), bytes: new Uint8Array(bytes) });
    } else {
      const value = String(part.value);
      const existing = raw[part.fieldname];
      raw[part.fieldname] =
        existing === undefined ? value : Array.isArray(existing) ? [...existing, value] : [existing, value];
    }
  }
  const min = options.minPhotos ?? 1;
  if (files.length < min)
    throw new UploadError(400, min === 1 ? "no photo in the form" : `at least ${min} photos are needed`);
  if (files.length > maxPhotos) throw new UploadError(413, `at most ${maxPhotos} photo(s) per request`);
  const parsed = fieldsSchema.safeParse(raw);
  if (!parsed.success) throw parsed.error;
  const photos: CheckedPhoto[] = [];
  for (const f of files) photos.push(await checkPhoto(f.name, f.bytes, limits));
  return { fields: parsed.data as z.output<S>, photos };
}

/** What the audit log keeps of an upload. */
export const photoSummary = (p: CheckedPhoto) => ({
  name: p.name,
  bytes: p.bytes.length,
  size: `${p.width}x${p.height}`,
  sha256: p.sha256.slice(0, 16),
});
