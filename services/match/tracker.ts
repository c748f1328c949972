import { qualityRank } from "../../lib/vision/pixels/quality.ts";
import type { QualityScores } from "../../lib/contracts/index.ts";
import { cosine, iou, type Box } from "../../lib/geometry/index.ts";
import { TrackTemplate } from "./template.ts";

export interface TrackerOptions {
  timeoutMs: number;
  similarity: number;
  iou: number;
  reacquire: number;
}

export interface TrackedFace {
  faceId: string;
  frameSeq: number;
  ts: number;
  box: Box;
  vector: Float32Array;
  quality: QualityScores;
  /** Calibrated chance (0–1) that this look is recognised: its weight in the track's template. Default 1. */
  recognisability?: number;
}

export interface Track<F extends TrackedFace = TrackedFace> {
  id: string;
  /** The face that opened the track: deterministic from camera + frame, so replays give the same ids. */
  firstFaceId: string;
  cameraId: string;
  startTs: number;
  lastTs: number;
  lastSeq: number;
  lastBox: Box;
  faces: number;
  /** Quality-weighted mean of the track's looks: steadier than any single frame, and what is matched. */
  template: TrackTemplate;
  best: F;
  bestRank: number;
  /** Every face the track took: a face delivered again (at-least-once) is recognised and not counted twice. */
  faceIds: Set<string>;
}

/**
 * Groups one camera's faces into tracks: a face continues the track it overlaps and resembles (box IoU +
 * embedding similarity), or one it strongly resembles anywhere in the frame (re-acquired after a pass behind
 * someone); otherwise it starts a new track. Tracks end after `timeoutMs` of capture time without a face.
 */
export class CameraTracker<F extends TrackedFace = TrackedFace> {
  private active: Track<F>[] = [];

  constructor(
    readonly cameraId: string,
    private readonly options: TrackerOptions,
  ) {}

  /** The open track that already took this face, if one did (a redelivered record). */
  holding(faceId: string): Track<F> | undefined {
    return this.active.find((t) => t.faceIds.has(faceId));
  }

  /** The open tracks, for a checkpoint. */
  get open(): readonly Track<F>[] {
    return this.active;
  }

  /** Continues from a checkpoint's open tracks. */
  restore(tracks: Track<F>[]): void {
    this.active = tracks;
  }

  /** Adds a face; returns its track and the tracks that timed out before it. */
  update(face: F): { track: Track<F>; ended: Track<F>[] } {
    const ended = this.expire(face.ts);
    let best: { track: Track<F>; score: number } | undefined;
    for (const track of this.active) {
      if (track.lastSeq === face.frameSeq) continue; // one face per track per frame
      const sim = cosine(track.template.vector, face.vector);
      const overlap = iou(track.lastBox, face.box);
      const continues =
        (sim >= this.options.similarity && overlap >= this.options.iou) || sim >= this.options.reacquire;
      if (continues && (!best || sim + overlap > best.score)) best = { track, score: sim + overlap };
    }
    const rank = qualityRank(face.quality);
    if (!best) {
      const track: Track<F> = {
        id: `track:${face.faceId}`,
        firstFaceId: face.faceId,
        cameraId: this.cameraId,
        startTs: face.ts,
        lastTs: face.ts,
        lastSeq: face.frameSeq,
        lastBox: face.box,
        faces: 1,
        template: TrackTemplate.of(face.vector, face.recognisability ?? 1),
        best: face,
        bestRank: rank,
        faceIds: new Set([face.faceId]),
      };
      this.active.push(track);
      return { track, ended };
    }
    const t = best.track;
    t.lastTs = Math.max(t.lastTs, face.ts);
    t.lastSeq = face.frameSeq;
    t.lastBox = face.box;
    t.faces++;
    t.faceIds.add(face.faceId);
    t.template.add(face.vector, face.recognisability ?? 1);
    if (rank > t.bestRank) {
      t.best = face;
      t.bestRank = rank;
    }
    return { track: t, ended };
  }

  /** Ends tracks idle since before `now - timeout`. */
  expire(now: number): Track<F>[] {
    const ended = this.active.filter((t) => now - t.lastTs > this.options.timeoutMs);
    if (ended.length > 0) this.active = this.active.filter((t) => now - t.lastTs <= this.options.timeoutMs);
    return ended;
  }

  /** Ends every track (stream over, shutdown). */
  flush(): Track<F>[] {
    const all = this.active;
    this.active = [];
    return all;
  }
}
