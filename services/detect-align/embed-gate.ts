import { qualityRank } from "../../lib/vision/pixels/quality.ts";
import type { QualityScores } from "../../lib/contracts/index.ts";
import { iou, type Box } from "../../lib/geometry/index.ts";

export interface EmbedGateOptions {
  /** A face that continues one embedded less than this long ago (capture time) is not embedded again; 0 embeds all. */
  reembedAfterMs: number;
  /** …unless its quality rank beats the best embedded so far by this fraction (a better look at the same face). */
  qualityGain: number;
  /** Least box overlap with the previous frame's face for a face to count as the same one. */
  iou: number;
  /** A face unseen for this long is forgotten; the next face in its place is embedded at once. */
  forgetAfterMs: number;
}

interface GateTrack {
  box: Box;
  lastSeenTs: number;
  lastEmbeddedTs: number;
  bestRank: number;
}

export type GateDecision = "new" | "due" | "better" | "same";

/**
 * Decides which faces of one camera go on to be embedded. A face seen in the same place in the previous frames
 * was embedded moments ago; embedding it at every frame costs most of the pipeline's CPU and tells the match
 * stage nothing new. So a new face is embedded at once (no delay to its first alert), a continuing face again
 * every `reembedAfterMs` (the match stage's tracks stay alive, since that is below their time-out), and whenever
 * it is clearly better than the best embedded look at it (the sighting keeps its best crop). This is the
 * secondary-inference interval of DeepStream-style pipelines, with overlap only, because the embedding is what
 * it saves.
 */
export class EmbedGate {
  private readonly cameras = new Map<string, GateTrack[]>();
  /** Each camera's recent decisions by frame seq: a redelivered frame gets the same answer, so nothing is lost. */
  private readonly recent = new Map<string, Map<number, GateDecision[]>>();

  constructor(private readonly options: EmbedGateOptions) {}

  /**
   * One decision per face of one frame, in the order given; faces are claimed by the best-overlapping track.
   * Deciding a frame (camera + seq) again returns the first answer and changes nothing.
   */
  decide(
    cameraId: string,
    frame: { seq: number; ts: number },
    faces: { box: Box; quality: QualityScores }[],
  ): GateDecision[] {
    if (this.options.reembedAfterMs <= 0) return faces.map(() => "new");
    let recent = this.recent.get(cameraId);
    if (!recent) this.recent.set(cameraId, (recent = new Map()));
    const before = recent.get(frame.seq);
    if (before) return before;
    const decisions = this.decideNew(cameraId, frame.ts, faces);
    recent.set(frame.seq, decisions);
    if (recent.size > 256) recent.delete(recent.keys().next().value!);
    return decisions;
  }

  private decideNew(
    cameraId: string,
    ts: number,
    faces: { box: Box; quality: QualityScores }[],
  ): GateDecision[] {
    const tracks = (this.cameras.get(cameraId) ?? []).filter(
      (t) => ts - t.lastSeenTs <= this.options.forgetAfterMs && t.lastSeenTs <= ts,
    );
    const claimed = new Set<GateTrack>();
    const decisions = faces.map((face): GateDecision => {
      let best: { track: GateTrack; overlap: number } | undefined;
      for (const track of tracks) {
        if (claimed.has(track)) continue;
        const overlap = iou(track.box, face.box);
        if (overlap >= this.options.iou && (!best || overlap > best.overlap)) best = { track, overlap };
      }
      const rank = qualityRank(face.quality);
      if (!best) {
        const track = { box: face.box, lastSeenTs: ts, lastEmbeddedTs: ts, bestRank: rank };
        tracks.push(track);
        claimed.add(track);
        return "new";
      }
      const t = best.track;
      claimed.add(t);
      t.box = face.box;
      t.lastSeenTs = ts;
      let decision: GateDecision = "same";
      if (ts - t.lastEmbeddedTs >= this.options.reembedAfterMs) decision = "due";
      else if (rank > t.bestRank * (1 + this.options.qualityGain)) decision = "better";
      if (decision !== "same") {
        t.lastEmbeddedTs = ts;
        t.bestRank = Math.max(t.bestRank, rank);
      }
      return decision;
    });
    this.cameras.set(cameraId, tracks);
    return decisions;
  }
}
