import {
  AlertContract,
  EmbeddingContract,
  SightingContract,
  Topics,
  bytesToVector,
  vectorToBytes,
  type EmbeddingMessage,
} from "../../lib/contracts/index.ts";
import type { Emit, Stage } from "../../lib/runtime/stage.ts";
import type { Sighting, SightingStore } from "../../lib/store/sighting-store.ts";
import type { WatchlistMatch, WatchlistStore } from "../../lib/store/watchlist-store.ts";
import { encodeJpeg } from "../../lib/vision/pixels/image.ts";
import { CameraTracker, type Track, type TrackedFace, type TrackerOptions } from "./tracker.ts";
import { normalised } from "../../lib/geometry/index.ts";

export interface MatchOptions {
  /** Calibrated threshold for a model (a per-watchlist threshold in the store overrides it). */
  thresholdFor: (modelId: string) => number;
  /** An alert for a person on a camera suppresses further alerts for them there for this long. */
  alertCooldownMs: number;
  tracker: TrackerOptions;
  exclusionSimilarity: number;
}

interface Face extends TrackedFace {
  message: EmbeddingMessage;
}

interface TrackMatch {
  personId: string;
  name: string;
  score: number;
}

/**
 * embeddings → tracks per camera → one sighting per track (stored for history search, published on
 * vigil.sightings) and watchlist alerts, once per person per camera per cool-down (by capture time).
 */
export class MatchStage implements Stage<EmbeddingMessage> {
  readonly name = "match";
  readonly input = { topic: Topics.embeddings, contract: EmbeddingContract };
  private trackers = new Map<string, CameraTracker<Face>>();
  private trackMatches = new Map<string, TrackMatch>();
  private lastAlert = new Map<string, number>();
  readonly stats = { sightings: 0, alerts: 0, excluded: 0 };

  constructor(
    private readonly watchlist: WatchlistStore,
    private readonly history: SightingStore,
    private readonly options: MatchOptions,
  ) {}

  async handle(batch: EmbeddingMessage[]): Promise<Emit[]> {
    const faces = batch
      .map((m): Face => ({
        faceId: m.faceId,
        frameSeq: m.frameSeq,
        ts: m.captureTs,
        box: m.box,
        vector: bytesToVector(m.vector),
        quality: m.quality,
        message: m,
      }))
      .sort((a, b) => a.ts - b.ts);
    const matches = await this.matchAll(faces);
    const emits: Emit[] = [];
    const ended: Track<Face>[] = [];
    const thresholds = new Map<string, number>();
    for (const [i, face] of faces.entries()) {
      const { track, ended: done } = this.tracker(face.message.cameraId).update(face);
      ended.push(...done);
      const hit = await this.acceptedMatch(face, matches[i]!, thresholds);
      if (!hit) continue;
      const current = this.trackMatches.get(track.id);
      if (!current || hit.match.score > current.score) {
        this.trackMatches.set(track.id, {
          personId: hit.match.person.id,
          name: hit.match.person.name,
          score: hit.match.score,
        });
      }
      const alert = await this.alertFor(face.message, hit.match, hit.threshold);
      if (alert) emits.push(alert);
    }
    const latest = faces.at(-1)?.ts;
    if (latest !== undefined) for (const t of this.trackers.values()) ended.push(...t.expire(latest));
    emits.push(...(await this.sightingsFor(ended)));
    return emits;
  }

  /** Ends every open track: the stream is over or the service is stopping. */
  async flush(): Promise<Emit[]> {
    const tracks = [...this.trackers.values()].flatMap((t) => t.flush());
    return this.sightingsFor(tracks);
  }

  private tracker(cameraId: string) {
    let t = this.trackers.get(cameraId);
    if (!t) {
      t = new CameraTracker<Face>(cameraId, this.options.tracker);
      this.trackers.set(cameraId, t);
    }
    return t;
  }

  /** One batched watchlist query per model in the batch (vectors of different models are never compared). */
  private async matchAll(faces: Face[]): Promise<WatchlistMatch[][]> {
    const out: WatchlistMatch[][] = faces.map(() => []);
    const byModel = new Map<string, number[]>();
    faces.forEach((f, i) => byModel.set(f.message.modelId, [...(byModel.get(f.message.modelId) ?? []), i]));
    for (const [modelId, idx] of byModel) {
      const results = await this.watchlist.match(
        modelId,
        idx.map((i) => faces[i]!.vector),
        3,
      );
      idx.forEach((i, k) => (out[i] = results[k]!));
    }
    return out;
  }

  /** The best candidate above its watchlist's threshold that is not excluded for this face. */
  private async acceptedMatch(face: Face, candidates: WatchlistMatch[], thresholds: Map<string, number>) {
    for (const match of candidates) {
      const wl = match.person.watchlistId;
      if (!thresholds.has(wl)) {
        thresholds.set(
          wl,
          (await this.watchlist.watchlistThreshold(wl)) ?? this.options.thresholdFor(face.message.modelId),
        );
      }
      const threshold = thresholds.get(wl)!;
      if (match.score < threshold) continue;
      const excluded = await this.watchlist.exclusionScore(
        match.person.id,
        face.message.modelId,
        face.vector,
      );
      if (excluded >= this.options.exclusionSimilarity) {
        this.stats.excluded++;
        continue;
      }
      return { match, threshold };
    }
    return undefined;
  }

  private async alertFor(
    face: EmbeddingMessage,
    match: WatchlistMatch,
    threshold: number,
  ): Promise<Emit | undefined> {
    const key = `${match.person.id}@${face.cameraId}`;
    const last = this.lastAlert.get(key);
    if (last !== undefined && face.captureTs >= last && face.captureTs - last < this.options.alertCooldownMs)
      return undefined;
    this.lastAlert.set(key, face.captureTs);
    this.stats.alerts++;
    const crop = await encodeJpeg({
      width: face.cropSize.width,
      height: face.cropSize.height,
      data: face.crop,
    });
    return {
      topic: Topics.alerts,
      key: match.person.watchlistId,
      value: AlertContract.encode({
        // Derived from the face id, so a replayed embedding yields the same alert id (idempotent downstream).
        alertId: `alert:${face.faceId}:${match.person.id}`,
        watchlistId: match.person.watchlistId,
        personId: match.person.id,
        personName: match.person.name,
        cameraId: face.cameraId,
        ts: face.captureTs,
        score: match.score,
        threshold,
        modelId: face.modelId,
        faceId: face.faceId,
        box: face.box,
        crop,
      }),
    };
  }

  private async sightingsFor(tracks: Track<Face>[]): Promise<Emit[]> {
    if (tracks.length === 0) return [];
    const sightings: Sighting[] = [];
    for (const t of tracks) {
      const best = t.best.message;
      const match = this.trackMatches.get(t.id) ?? null;
      this.trackMatches.delete(t.id);
      sightings.push({
        id: `sighting:${t.firstFaceId}`,
        trackId: t.id,
        cameraId: t.cameraId,
        startTs: t.startTs,
        endTs: t.lastTs,
        faces: t.faces,
        modelId: best.modelId,
        quality: best.quality,
        match,
        vector: normalised(t.sum),
        crop: await encodeJpeg({ width: best.cropSize.width, height: best.cropSize.height, data: best.crop }),
      });
    }
    // Stored before it is announced: a consumer that hears of a sighting can always look it up.
    await this.history.addSightings(sightings);
    this.stats.sightings += sightings.length;
    return sightings.map((s) => ({
      topic: Topics.sightings,
      key: s.match?.personId ?? s.trackId,
      value: SightingContract.encode({
        sightingId: s.id,
        trackId: s.trackId,
        cameraId: s.cameraId,
        startTs: s.startTs,
        endTs: s.endTs,
        faces: s.faces,
        modelId: s.modelId,
        dim: s.vector.length,
        quality: s.quality,
        match: s.match,
        vector: vectorToBytes(s.vector),
        crop: s.crop,
      }),
    }));
  }
}
