import { z } from "zod";
import { defineContract, type MessageOf } from "./codec.ts";

/** Topic names: the only place they are spelled. */
export const Topics = {
  frames: "vigil.frames",
  faces: "vigil.faces",
  embeddings: "vigil.embeddings",
  sightings: "vigil.sightings",
  alerts: "vigil.alerts",
  cameraStatus: "vigil.camera-status",
  watchlistChanges: "vigil.watchlist-changes",
  dlq: "vigil.dlq",
} as const;
export type TopicName = (typeof Topics)[keyof typeof Topics];

const cameraId = z.string().min(1).max(200);
const finite = z.number().refine(Number.isFinite, "must be a finite number");
const point = z.tuple([finite, finite]);
const box = z.object({ x: finite, y: finite, width: finite.nonnegative(), height: finite.nonnegative() });
const timestamp = z.number().int().nonnegative();

export const FrameHeader = z.object({
  cameraId,
  seq: z.number().int().nonnegative(),
  /** Wall-clock capture time, ms since the epoch. */
  captureTs: timestamp,
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  /**
   * `yuv420p` is planar Y then half-size U and V (what live cameras give); `bgr24` is packed rows, width ×
   * height × 3; `jpeg` is a baseline JPEG.
   */
  format: z.enum(["yuv420p", "bgr24", "jpeg"]),
  /**
   * A live camera's frame (not a file's): only these go stale. Optional, so frames written before it existed
   * read the same.
   */
  live: z.boolean().optional(),
});

export const QualityScores = z.object({
  faceSize: finite,
  interOcular: finite,
  sharpness: finite,
  yawDeg: finite,
  pitchDeg: finite,
  detScore: finite,
});

export const FaceHeader = z.object({
  /** `<camera>:<seq>:<index>`: deterministic, so replays are idempotent downstream. */
  faceId: z.string().min(1),
  cameraId,
  frameSeq: z.number().int().nonnegative(),
  captureTs: timestamp,
  frameWidth: z.number().int().positive(),
  frameHeight: z.number().int().positive(),
  box,
  /** Left eye, right eye (as seen in the image), nose tip, left and right mouth corner; frame pixels. */
  landmarks: z.array(point).length(5),
  quality: QualityScores,
  detectorModel: z.string().min(1),
  cropSize: z.object({ width: z.number().int().positive(), height: z.number().int().positive() }),
  /**
   * How the crop's bytes are laid out; absent: packed BGR. Added within version 1, so a reader that predates it
   * would take yuv420p bytes for BGR: upgrade embed and match before detect-align.
   */
  cropFormat: z.enum(["bgr24", "yuv420p"]).optional(),
});

export const EmbeddingHeader = FaceHeader.extend({
  modelId: z.string().min(1),
  dim: z.number().int().positive(),
});

export const SightingHeader = z.object({
  sightingId: z.string().min(1),
  trackId: z.string().min(1),
  cameraId,
  startTs: timestamp,
  endTs: timestamp,
  faces: z.number().int().positive(),
  modelId: z.string().min(1),
  dim: z.number().int().positive(),
  quality: QualityScores,
  match: z.object({ personId: z.string(), name: z.string(), score: finite }).nullable(),
  /**
   * The unknown identity a sighting that matched nobody joined (identities.enabled), so a consumer can follow a
   * stranger without asking the store. Optional: version 1 messages before it still parse.
   */
  unknownId: z.string().min(1).optional(),
  /**
   * The best face's box (frame pixels, as FaceHeader's) and capture time: where and when to draw it over the
   * sighting's clip. Optional: version 1 messages before them still parse.
   */
  box: box.optional(),
  boxTs: timestamp.optional(),
});

export const AlertHeader = z.object({
  alertId: z.string().min(1),
  watchlistId: z.string().min(1),
  personId: z.string().min(1),
  personName: z.string(),
  cameraId,
  ts: timestamp,
  score: finite,
  threshold: finite,
  modelId: z.string().min(1),
  faceId: z.string().min(1),
  box,
  /**
   * The enrolled face (`<person>:<file>`) that scored best, for showing the operator which photo matched.
   * Optional, so alerts published before it existed read the same; readers of an older build ignore it.
   */
  matchedFaceId: z.string().min(1).optional(),
});

export const CameraStatusHeader = z.object({
  cameraId,
  state: z.enum(["connecting", "live", "stalled", "backoff", "error", "ended"]),
  ts: timestamp,
  lastError: z.string().nullable(),
  framesIn: z.number().int().nonnegative(),
  /** Frames dropped because the pipeline was behind (live sources keep the newest frame). */
  framesDropped: z.number().int().nonnegative(),
  /** Packets or frames ffmpeg could not decode; counted, never fatal. */
  framesUndecodable: z.number().int().nonnegative(),
  reconnects: z.number().int().nonnegative(),
  /** Cameras asked to record: whether they are, and why not (a file, a codec that cannot be copied). */
  recording: z.object({ on: z.boolean(), reason: z.string().nullable() }).optional(),
});

export const WatchlistChangeHeader = z.object({
  kind: z.enum(["enrolled", "removed", "excluded", "threshold"]),
  watchlistId: z.string().min(1),
  /** Absent for a watchlist-wide change (a threshold). */
  personId: z.string().min(1).optional(),
  ts: timestamp,
});

export const DeadLetterHeader = z.object({
  sourceTopic: z.string(),
  key: z.string(),
  reason: z.string(),
  ts: timestamp,
});

export const FrameContract = defineContract({
  typeId: 1,
  name: "frame",
  version: 1,
  header: FrameHeader,
  blobs: ["image"] as const,
});
export const FaceContract = defineContract({
  typeId: 2,
  name: "face",
  version: 1,
  header: FaceHeader,
  /**
   * The aligned crop: packed BGR, `cropSize.width × cropSize.height × 3`, or with `cropFormat` yuv420p, a
   * full-size luma plane and two quarter-size chroma planes (`× 1.5`).
   */
  blobs: ["crop"] as const,
});
export const EmbeddingContract = defineContract({
  typeId: 3,
  name: "embedding",
  version: 1,
  header: EmbeddingHeader,
  /** `vector`: `dim` float32 little-endian, L2-normalised. `crop`: as in the face message. */
  blobs: ["vector", "crop"] as const,
});
export const SightingContract = defineContract({
  typeId: 4,
  name: "sighting",
  version: 1,
  header: SightingHeader,
  /** `crop`: JPEG of the track's best face. */
  blobs: ["vector", "crop"] as const,
});
export const AlertContract = defineContract({
  typeId: 5,
  name: "alert",
  version: 1,
  header: AlertHeader,
  blobs: ["crop"] as const,
});
export const CameraStatusContract = defineContract({
  typeId: 6,
  name: "camera-status",
  version: 1,
  header: CameraStatusHeader,
  blobs: [] as const,
});
export const DeadLetterContract = defineContract({
  typeId: 7,
  name: "dead-letter",
  version: 1,
  header: DeadLetterHeader,
  blobs: ["original"] as const,
});

export const WatchlistChangeContract = defineContract({
  typeId: 8,
  name: "watchlist-change",
  version: 1,
  header: WatchlistChangeHeader,
  blobs: [] as const,
});

export type FrameMessage = MessageOf<typeof FrameHeader, "image">;
export type FaceMessage = MessageOf<typeof FaceHeader, "crop">;
export type EmbeddingMessage = MessageOf<typeof EmbeddingHeader, "vector" | "crop">;
export type SightingMessage = MessageOf<typeof SightingHeader, "vector" | "crop">;
export type AlertMessage = MessageOf<typeof AlertHeader, "crop">;
export type CameraStatusMessage = MessageOf<typeof CameraStatusHeader, never>;
export type WatchlistChangeMessage = MessageOf<typeof WatchlistChangeHeader, never>;
export type DeadLetterMessage = MessageOf<typeof DeadLetterHeader, "original">;
export type QualityScores = z.infer<typeof QualityScores>;

/** Float32 vectors travel little-endian; these keep the byte view honest on any platform. */
export function vectorToBytes(vector: Float32Array): Uint8Array {
  const out = new Uint8Array(vector.length * 4);
  const view = new DataView(out.buffer);
  vector.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return out;
}

export function bytesToVector(bytes: Uint8Array): Float32Array {
  if (bytes.byteLength % 4 !== 0)
    throw new RangeError(`vector byte length ${bytes.byteLength} is not a multiple of 4`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(bytes.byteLength / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}
