import { bytesToVector, EmbeddingContract, type EmbeddingMessage } from "../../lib/contracts/index.ts";
import { TrackTemplate, type TemplateSnapshot } from "./template.ts";
import type { Track, TrackedFace } from "./tracker.ts";

/** A face as the match stage holds it: the tracked look and the message it came in. */
export interface MatchFace extends TrackedFace {
  message: EmbeddingMessage;
}

/** The face an embedding message shows, as the tracker takes it. */
export function matchFace(message: EmbeddingMessage, recognisability: number | undefined): MatchFace {
  return {
    faceId: message.faceId,
    frameSeq: message.frameSeq,
    ts: message.captureTs,
    box: message.box,
    vector: bytesToVector(message.vector),
    quality: message.quality,
    recognisability,
    message,
  };
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
  /**
   * `<track>/<person>` of open tracks that alerted for a followed person past the cool-down: without them a replica
   * taking the partition over would alert once more on the same pass. Absent from checkpoints written before it.
   */
  alertedTracks?: string[];
}

/** A track as JSON: its plain fields as they are, the rest in forms JSON keeps (the best face is in the blob). */
type TrackHeader = Omit<Track<MatchFace>, "faceIds" | "template" | "best"> & {
  faceIds: string[];
  template: TemplateSnapshot;
  best: { recognisability: number | undefined; at: number; length: number };
};

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
    const { faceIds, template, best: _best, ...plain } = t;
    return { ...plain, faceIds: [...faceIds], template: template.snapshot(), best };
  });
  const header = Buffer.from(
    JSON.stringify({
      version: VERSION,
      nextOffset: c.nextOffset,
      tracks,
      trackMatches: c.trackMatches,
      lastAlert: c.lastAlert,
      alertedTracks: c.alertedTracks ?? [],
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
    alertedTracks?: string[];
  };
  if (header.version !== VERSION)
    throw new Error(`match checkpoint version ${header.version} is not ${VERSION}`);
  const blob = bytes.subarray(4 + length);
  const tracks = header.tracks.map((t): Track<MatchFace> => {
    const message = EmbeddingContract.decode(blob.slice(t.best.at, t.best.at + t.best.length));
    const best = matchFace(message, t.best.recognisability);
    const { faceIds, template, best: _best, ...plain } = t;
    return { ...plain, faceIds: new Set(faceIds), template: TrackTemplate.restore(template), best };
  });
  return {
    nextOffset: header.nextOffset,
    tracks,
    trackMatches: header.trackMatches,
    lastAlert: header.lastAlert,
    alertedTracks: header.alertedTracks ?? [],
  };
}
