import { bytesToVector, EmbeddingContract, type EmbeddingMessage } from "../../lib/contracts/index.ts";
import type { Box } from "../../lib/geometry/index.ts";
import { TrackTemplate, type TemplateSnapshot } from "./template.ts";
import type { Track, TrackedFace } from "./tracker.ts";

/** A face as the match stage holds it: the tracked look and the message it came in. */
export interface MatchFace extends TrackedFace {
  message: EmbeddingMessage;
}

export interface TrackMatch {
  personId: string;
  name: string;
  score: number;
}

/**
 * What the match stage holds for one input partition, saved after every batch before its offsets are committed:
 * a replica that takes the partition over (after a crash or a rebalance) continues the same open tracks with the
 * same cool-downs, and skips the records this state already contains.
 */
export interface PartitionCheckpoint {
  /** The first input offset not reflected here: a replay skips what comes before it. */
  nextOffset: string;
  tracks: Track<MatchFace>[];
  trackMatches: Record<string, TrackMatch>;
  /** `person@camera` → capture time of the last alert. */
  lastAlert: Record<string, number>;
}

interface TrackHeader {
  id: string;
  firstFaceId: string;
  cameraId: string;
  startTs: number;
  lastTs: number;
  lastSeq: number;
  lastBox: Box;
  faces: number;
  bestRank: number;
  faceIds: string[];
  template: TemplateSnapshot;
  best: { recognisability: number | undefined; at: number; length: number };
}

const VERSION = 1;

/** Header JSON, then the best faces' embedding messages (crops included) as raw bytes. */
export function encodeCheckpoint(c: PartitionCheckpoint): Uint8Array {
  const blobs: Uint8Array[] = [];
  let at = 0;
  const tracks: TrackHeader[] = c.tracks.map((t) => {
    const bytes = EmbeddingContract.encode(t.best.message);
    blobs.push(bytes);
    const best = { recognisability: t.best.recognisability, at, length: bytes.byteLength };
    at += bytes.byteLength;
    return {
      id: t.id,
      firstFaceId: t.firstFaceId,
      cameraId: t.cameraId,
      startTs: t.startTs,
      lastTs: t.lastTs,
      lastSeq: t.lastSeq,
      lastBox: t.lastBox,
      faces: t.faces,
      bestRank: t.bestRank,
      faceIds: [...t.faceIds],
      template: t.template.snapshot(),
      best,
    };
  });
  const header = Buffer.from(
    JSON.stringify({
      version: VERSION,
      nextOffset: c.nextOffset,
      tracks,
      trackMatches: c.trackMatches,
      lastAlert: c.lastAlert,
    }),
  );
  const out = new Uint8Array(4 + header.byteLength + at);
  new DataView(out.buffer).setUint32(0, header.byteLength);
  out.set(header, 4);
  let offset = 4 + header.byteLength;
  for (const b of blobs) {
    out.set(b, offset);
    offset += b.byteLength;
  }
  return out;
}

export function decodeCheckpoint(bytes: Uint8Array): PartitionCheckpoint {
  const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0);
  const header = JSON.parse(Buffer.from(bytes.subarray(4, 4 + length)).toString("utf8")) as {
    version: number;
    nextOffset: string;
    tracks: TrackHeader[];
    trackMatches: Record<string, TrackMatch>;
    lastAlert: Record<string, number>;
  };
  if (header.version !== VERSION)
    throw new Error(`match checkpoint version ${header.version} is not ${VERSION}`);
  const blob = bytes.subarray(4 + length);
  const tracks = header.tracks.map((t): Track<MatchFace> => {
    const message = EmbeddingContract.decode(blob.slice(t.best.at, t.best.at + t.best.length));
    const best: MatchFace = {
      faceId: message.faceId,
      frameSeq: message.frameSeq,
      ts: message.captureTs,
      box: message.box,
      vector: bytesToVector(message.vector),
      quality: message.quality,
      recognisability: t.best.recognisability,
      message,
    };
    return {
      id: t.id,
      firstFaceId: t.firstFaceId,
      cameraId: t.cameraId,
      startTs: t.startTs,
      lastTs: t.lastTs,
      lastSeq: t.lastSeq,
      lastBox: t.lastBox,
      faces: t.faces,
      bestRank: t.bestRank,
      faceIds: new Set(t.faceIds),
      template: TrackTemplate.restore(t.template),
      best,
    };
  });
  return {
    nextOffset: header.nextOffset,
    tracks,
    trackMatches: header.trackMatches,
    lastAlert: header.lastAlert,
  };
}
