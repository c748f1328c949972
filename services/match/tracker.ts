import { qualityRank } from "../../lib/vision/pixels/quality.ts";
import type { QualityScores } from "../../lib/contracts/index.ts";
import { cosine, iou, normalised, type Box } from "../../lib/geometry/index.ts";

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
  /** Running mean of the track's vectors (unnormalised): steadier than any single frame. */
  sum: Float32Array;
  best: F;
  bestRank: number;
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

  /** Adds a face; returns its track and the tracks that timed out before it. */
  update(face: F): { track: Track<F>; ended: Track<F>[] } {
    const ended = this.expire(face.ts);
    let best: { track: Track<F>; score: number } | undefined;
    for (const track of this.active) {
      if (track.lastSeq === face.frameSeq) continue; // one face per track per frame
      const sim = cosine(normalised(track.sum), face.vector);
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
        sum: Float32Array.from(face.vector),
        best: face,
        bestRank: rank,
      };
      this.active.push(track);
      return { track, ended };
    }
    const t = best.track;
    t.lastTs = Math.max(t.lastTs, face.ts);
    t.lastSeq = face.frameSeq;
    t.lastBox = face.box;
    t.faces++;
    for (let i = 0; i < t.sum.length; i++) t.sum[i]! += face.vector[i]!;
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
