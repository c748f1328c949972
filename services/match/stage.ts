import {
  AlertContract,
  EmbeddingContract,
  SightingContract,
  Topics,
  bytesToVector,
  vectorToBytes,
  type EmbeddingMessage,
} from "../../lib/contracts/index.ts";
import type { TopicPartition } from "../../lib/bus/index.ts";
import { partitionKey } from "../../lib/bus/index.ts";
import type { BatchInfo, Emit, Stage } from "../../lib/runtime/stage.ts";
import { alertFromMessage, type AlertStore } from "../../lib/store/alert-store.ts";
import type { Sighting, SightingStore } from "../../lib/store/sighting-store.ts";
import type { StateStore } from "../../lib/store/state-store.ts";
import type { IdentityStore } from "../../lib/store/identity-store.ts";
import type { WatchlistMatch, WatchlistStore } from "../../lib/store/watchlist-store.ts";
import { encodeJpeg, messageCrop } from "../../lib/vision/pixels/image.ts";
import { CameraTracker, type Track, type TrackerOptions } from "./tracker.ts";
import { recognisability, type RecognisabilityModel } from "../../lib/vision/pixels/quality.ts";
import { minTrustFor, recognisabilityFor } from "../../lib/vision/models/calibration.ts";
import { accepts } from "./template.ts";
import {
  decodeCheckpoint,
  encodeCheckpoint,
  matchFace,
  type MatchFace,
  type PartitionCheckpoint,
  type TrackMatch,
} from "./checkpoint.ts";

export interface MatchOptions {
  /** Calibrated threshold for a model (a per-watchlist threshold in the store overrides it). */
  thresholdFor: (modelId: string) => number;
  /**
   * Least trust a track needs before it may alert or label a sighting (see template.ts). Default: the value
   * calibrated for the model (`match.minTrust` overrides it through calibration.ts's minTrustFor).
   */
  minTrustFor?: (modelId: string) => number;
  /** How a look's quality scores become its recognisability. Default: the model's calibrated coefficients. */
  recognisabilityFor?: (modelId: string) => RecognisabilityModel | undefined;
  /** An alert for a person on a camera suppresses further alerts for them there for this long. */
  alertCooldownMs: number;
  /**
   * People followed live (`vigil follow`): their alerts are not held back by the cool-down, though still one per
   * track (a followed person's every appearance alerts, not every face of it).
   */
  follows?: { isFollowed(personId: string): Promise<boolean> };
  tracker: TrackerOptions;
  exclusionSimilarity: number;
  /**
   * Crash safety as a service: after every batch, each input partition's open tracks and cool-downs are saved
   * under `<namespace>:<topic>:<partition>` before the offsets are committed; a replica that takes a partition
   * over resumes them and skips what they already hold. Off in one process, where the bus is not durable either.
   */
  checkpoints?: { state: StateStore; namespace: string };
  /**
   * Sightings that match nobody join unknown identities (lib/store/identity-store.ts), at `thresholdFor` the
   * sighting's model. Absent: they are stored unlabelled.
   */
  unknowns?: { store: IdentityStore; thresholdFor: (modelId: string) => number };
}

type Face = MatchFace;

/** A face as it left its track: the template after it joined, which is what the decision is made on. */
interface Look {
  face: Face;
  track: Track<Face>;
  /** Not copied: a template builds a new unit vector after each look, so this one stays as it was. */
  template: Float32Array;
  trust: number;
}

/**
 * embeddings → tracks per camera → one sighting per track (stored for history search, published on
 * vigil.sightings) and watchlist alerts, once per person per camera per cool-down (by capture time).
 *
 * Decisions are made on the track, not on one face: each look updates the track's quality-weighted template
 * (template.ts), and the template is matched. A look too poor to trust alone extends its track and feeds the
 * template but raises nothing until the track as a whole can be trusted; a track that never gets there, or
 * never reaches the threshold, is stored as an unknown sighting.
 */
export class MatchStage implements Stage<EmbeddingMessage> {
  readonly name = "match";
  readonly input = { topic: Topics.embeddings, contract: EmbeddingContract };
  private trackers = new Map<string, CameraTracker<Face>>();
  private trackMatches = new Map<string, TrackMatch>();
  private lastAlert = new Map<string, number>();
  /** `<track>/<person>` of tracks that have alerted: a followed person's track alerts once, past the cool-down. */
  private alertedTracks = new Set<string>();
  /** Which input partition each camera's faces come in on (cameras are the partition key). */
  private cameraPartition = new Map<string, string>();
  /** Per partition: the first offset a checkpoint does not hold yet (records before it are replays). */
  private nextOffset = new Map<string, bigint>();
  /** Partitions whose state changed since their last checkpoint. */
  private dirty = new Set<string>();
  /** Per partition restored from a checkpoint: records below this offset are already in the state. */
  private resumeFrom = new Map<string, bigint>();
  /** `heldBack`: looks whose template reached a person's threshold before the track could be trusted. */
  readonly stats = {
    sightings: 0,
    alerts: 0,
    excluded: 0,
    heldBack: 0,
    replayed: 0,
    unknownsJoined: 0,
    unknownsCreated: 0,
  };

  constructor(
    private readonly watchlist: WatchlistStore,
    private readonly history: SightingStore & AlertStore,
    private readonly options: MatchOptions,
  ) {}

  /**
   * A batch that fails (a store away: the bus delivers it again) must leave the tracks as they were: otherwise the
   * redelivered faces are found in their tracks already and skipped, and an alert their first pass would have
   * raised is never raised.
   */
  async handle(batch: EmbeddingMessage[], info?: BatchInfo): Promise<Emit[]> {
    const before = this.remember(batch);
    try {
      return await this.handleFaces(batch, info);
    } catch (err) {
      this.rollBack(before);
      throw err;
    }
  }

  /**
   * What handling `batch` may change: the tracks of its cameras (copied through the checkpoint encoding, since a
   * track is updated in place), every other camera's list of open tracks (expiry only drops from it), and the
   * maps beside them.
   */
  private remember(batch: EmbeddingMessage[]) {
    const cameras = new Set(batch.map((m) => m.cameraId));
    const tracks = new Map<string, Uint8Array | readonly Track<Face>[]>();
    for (const [camera, t] of this.trackers)
      tracks.set(
        camera,
        cameras.has(camera)
          ? encodeCheckpoint({ nextOffset: "0", tracks: [...t.open], trackMatches: {}, lastAlert: {} })
          : [...t.open],
      );
    return {
      tracks,
      trackMatches: new Map(this.trackMatches),
      lastAlert: new Map(this.lastAlert),
      alertedTracks: new Set(this.alertedTracks),
      cameraPartition: new Map(this.cameraPartition),
      nextOffset: new Map(this.nextOffset),
      dirty: new Set(this.dirty),
    };
  }

  private rollBack(before: ReturnType<MatchStage["remember"]>) {
    for (const camera of [...this.trackers.keys()])
      if (!before.tracks.has(camera)) this.trackers.delete(camera);
    for (const [camera, saved] of before.tracks)
      this.tracker(camera).restore(saved instanceof Uint8Array ? decodeCheckpoint(saved).tracks : [...saved]);
    this.trackMatches = before.trackMatches;
    this.lastAlert = before.lastAlert;
    this.alertedTracks = before.alertedTracks;
    this.cameraPartition = before.cameraPartition;
    this.nextOffset = before.nextOffset;
    this.dirty = before.dirty;
  }

  private async handleFaces(batch: EmbeddingMessage[], info?: BatchInfo): Promise<Emit[]> {
    const quality = this.options.recognisabilityFor ?? recognisabilityFor;
    const fresh = info ? this.unseen(batch, info) : batch;
    const faces = fresh
      .map((m): Face => {
        const model = quality(m.modelId);
        return matchFace(m, model ? recognisability(m.quality, model) : 1);
      })
      .sort((a, b) => a.ts - b.ts);
    const ended: Track<Face>[] = [];
    const looks: Look[] = [];
    for (const face of faces) {
      const tracker = this.tracker(face.message.cameraId);
      // Delivered again (at-least-once): its track already counts it.
      if (tracker.holding(face.faceId)) {
        this.stats.replayed++;
        continue;
      }
      const { track, ended: done } = tracker.update(face);
      ended.push(...done);
      looks.push({ face, track, template: track.template.vector, trust: track.template.trust });
    }
    const matches = await this.matchAll(looks);
    const emits: Emit[] = [];
    const thresholds = new Map<string, number>();
    for (const [i, look] of looks.entries()) {
      const hit = await this.acceptedMatch(look, matches[i]!, thresholds);
      if (!hit) continue;
      const current = this.trackMatches.get(look.track.id);
      if (!current || hit.match.score > current.score) {
        this.trackMatches.set(look.track.id, {
          personId: hit.match.person.id,
          name: hit.match.person.name,
          score: hit.match.score,
        });
      }
      const alert = await this.alertFor(look.face.message, hit.match, hit.threshold, look.track.id);
      if (alert) emits.push(alert);
    }
    const latest = faces.at(-1)?.ts;
    if (latest !== undefined) for (const t of this.trackers.values()) ended.push(...t.expire(latest));
    emits.push(...(await this.sightingsFor(ended)));
    return emits;
  }

  /**
   * The batch's messages not already reflected in a restored checkpoint, noting which partition each camera
   * comes in on and how far each partition has got.
   */
  private unseen(batch: EmbeddingMessage[], info: BatchInfo): EmbeddingMessage[] {
    const out: EmbeddingMessage[] = [];
    batch.forEach((m, i) => {
      const record = info.records[i]!;
      const partition = partitionKey(record);
      const offset = BigInt(record.offset);
      const from = this.resumeFrom.get(partition);
      if (from !== undefined && offset < from) {
        this.stats.replayed++;
        return;
      }
      this.cameraPartition.set(m.cameraId, partition);
      const next = offset + 1n;
      if (next > (this.nextOffset.get(partition) ?? 0n)) this.nextOffset.set(partition, next);
      this.dirty.add(partition);
      out.push(m);
    });
    return out;
  }

  private stateKey(partition: string): string {
    return `${this.options.checkpoints!.namespace}:${partition}`;
  }

  /** Saves each changed partition's open tracks and cool-downs; the runner commits offsets after this. */
  async checkpoint(): Promise<void> {
    const cp = this.options.checkpoints;
    if (!cp) {
      this.dirty.clear();
      return;
    }
    for (const partition of this.dirty) {
      const cameras = new Set(
        [...this.cameraPartition].filter(([, p]) => p === partition).map(([camera]) => camera),
      );
      const tracks = [...cameras].flatMap((c) => [...(this.trackers.get(c)?.open ?? [])]);
      const state: PartitionCheckpoint = {
        nextOffset: String(this.nextOffset.get(partition) ?? 0n),
        tracks,
        trackMatches: Object.fromEntries(
          tracks.filter((t) => this.trackMatches.has(t.id)).map((t) => [t.id, this.trackMatches.get(t.id)!]),
        ),
        lastAlert: Object.fromEntries(
          // `person@camera`: camera ids cannot hold an "@" (the config schema), person ids may.
          [...this.lastAlert].filter(([key]) => cameras.has(key.slice(key.lastIndexOf("@") + 1))),
        ),
        alertedTracks: [...this.alertedTracks].filter((key) =>
          tracks.some((t) => key.startsWith(`${t.id}/`)),
        ),
      };
      await cp.state.saveState(this.stateKey(partition), encodeCheckpoint(state));
    }
    this.dirty.clear();
  }

  /** Takes over partitions: their cameras' open tracks and cool-downs, from the last checkpoint. */
  async assigned(partitions: TopicPartition[]): Promise<void> {
    const cp = this.options.checkpoints;
    if (!cp) return;
    for (const p of partitions) {
      const partition = partitionKey(p);
      const bytes = await cp.state.loadState(this.stateKey(partition));
      if (!bytes) continue;
      const state = decodeCheckpoint(bytes);
      const byCamera = new Map<string, Track<Face>[]>();
      for (const t of state.tracks) byCamera.set(t.cameraId, [...(byCamera.get(t.cameraId) ?? []), t]);
      for (const [camera, tracks] of byCamera) {
        this.tracker(camera).restore(tracks);
        this.cameraPartition.set(camera, partition);
      }
      for (const [id, m] of Object.entries(state.trackMatches)) this.trackMatches.set(id, m);
      for (const [key, ts] of Object.entries(state.lastAlert)) this.lastAlert.set(key, ts);
      for (const key of state.alertedTracks ?? []) this.alertedTracks.add(key);
      this.resumeFrom.set(partition, BigInt(state.nextOffset));
      this.nextOffset.set(partition, BigInt(state.nextOffset));
    }
  }

  /** Gives partitions up: their state is checkpointed already; the next owner carries on from it. */
  async revoked(partitions: TopicPartition[]): Promise<void> {
    if (!this.options.checkpoints) return;
    const gone = new Set(partitions.map(partitionKey));
    for (const [camera, partition] of [...this.cameraPartition]) {
      if (!gone.has(partition)) continue;
      for (const t of this.trackers.get(camera)?.open ?? []) {
        this.trackMatches.delete(t.id);
        for (const key of [...this.alertedTracks])
          if (key.startsWith(`${t.id}/`)) this.alertedTracks.delete(key);
      }
      for (const key of [...this.lastAlert.keys()])
        if (key.endsWith(`@${camera}`)) this.lastAlert.delete(key);
      this.trackers.delete(camera);
      this.cameraPartition.delete(camera);
    }
    for (const partition of gone) {
      this.resumeFrom.delete(partition);
      this.nextOffset.delete(partition);
      this.dirty.delete(partition);
    }
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
  private async matchAll(looks: Look[]): Promise<WatchlistMatch[][]> {
    const out: WatchlistMatch[][] = looks.map(() => []);
    const byModel = new Map<string, number[]>();
    looks.forEach((l, i) => {
      const model = l.face.message.modelId;
      byModel.set(model, [...(byModel.get(model) ?? []), i]);
    });
    for (const [modelId, idx] of byModel) {
      const results = await this.watchlist.match(
        modelId,
        idx.map((i) => looks[i]!.template),
        3,
      );
      idx.forEach((i, k) => (out[i] = results[k]!));
    }
    return out;
  }

  /** The best candidate the decision rule accepts for this look's template and that is not excluded. */
  private async acceptedMatch(look: Look, candidates: WatchlistMatch[], thresholds: Map<string, number>) {
    const modelId = look.face.message.modelId;
    const minTrust = (this.options.minTrustFor ?? minTrustFor)(modelId);
    for (const match of candidates) {
      const wl = match.person.watchlistId;
      if (!thresholds.has(wl)) {
        thresholds.set(
          wl,
          (await this.watchlist.watchlistThreshold(wl)) ?? this.options.thresholdFor(modelId),
        );
      }
      const threshold = thresholds.get(wl)!;
      if (!accepts({ threshold, minTrust }, look.trust, match.score)) {
        if (match.score >= threshold) this.stats.heldBack++;
        continue;
      }
      // The track's look as a whole is compared with the exclusion, as it is with the watchlist.
      const excluded = await this.watchlist.exclusionScore(match.person.id, modelId, look.template);
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
    trackId: string,
  ): Promise<Emit | undefined> {
    const key = `${match.person.id}@${face.cameraId}`;
    if (!this.lastAlert.has(key)) {
      // A cool-down outlives the process that started it: ask the store (a restart, a partition moved).
      const stored = await this.history.lastAlert(match.person.id, face.cameraId, face.captureTs);
      if (stored) this.lastAlert.set(key, stored.ts);
    }
    const last = this.lastAlert.get(key);
    const pass = `${trackId}/${match.person.id}`;
    const cooling =
      last !== undefined && face.captureTs >= last && face.captureTs - last < this.options.alertCooldownMs;
    // Followed: past the cool-down, but still once a pass (a track), not once a face.
    if (
      cooling &&
      (this.alertedTracks.has(pass) || !(await this.options.follows?.isFollowed(match.person.id)))
    )
      return undefined;
    this.alertedTracks.add(pass);
    this.lastAlert.set(key, face.captureTs);
    this.stats.alerts++;
    const crop = await encodeJpeg(messageCrop(face));
    const alert = {
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
      // Which of the person's enrolled photos scored best: what the operator is shown beside the face seen.
      matchedFaceId: match.faceId,
      crop,
    };
    // Stored before it is announced, with the face's vector so "not this person" can be said from it.
    await this.history.addAlerts([alertFromMessage(alert, bytesToVector(face.vector))]);
    return { topic: Topics.alerts, key: match.person.watchlistId, value: AlertContract.encode(alert) };
  }

  /**
   * One assignment per track: a track ends in exactly one sighting, and its template (the vector the watchlist
   * was matched on) is what joins an identity. After the sightings are stored and before the batch's offsets are
   * committed: a batch replayed after a crash stores the same sightings again and finds them assigned already
   * (the store assigns each sighting id once), so nothing is counted twice.
   */
  private async assignUnknowns(sightings: Sighting[]): Promise<Map<string, string>> {
    const assigned = new Map<string, string>();
    const unknowns = this.options.unknowns;
    if (!unknowns) return assigned;
    for (const s of sightings) {
      if (s.match) continue;
      const a = await unknowns.store.assignUnknown(s, unknowns.thresholdFor(s.modelId));
      // A replay announces the identity it was given the first time.
      assigned.set(s.id, a.id);
      if (a.replayed) continue;
      if (a.created) this.stats.unknownsCreated++;
      else this.stats.unknownsJoined++;
    }
    return assigned;
  }

  private async sightingsFor(tracks: Track<Face>[]): Promise<Emit[]> {
    if (tracks.length === 0) return [];
    for (const t of tracks) {
      const partition = this.cameraPartition.get(t.cameraId);
      if (partition) this.dirty.add(partition);
    }
    const sightings: Sighting[] = [];
    for (const t of tracks) {
      const best = t.best.message;
      const match = this.trackMatches.get(t.id) ?? null;
      this.trackMatches.delete(t.id);
      for (const key of [...this.alertedTracks])
        if (key.startsWith(`${t.id}/`)) this.alertedTracks.delete(key);
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
        // The face the crop shows, so a clip of the sighting can mark it where and when it was.
        box: best.box,
        boxTs: best.captureTs,
        vector: t.template.vector,
        crop: await encodeJpeg(messageCrop(best)),
      });
    }
    // Stored before it is announced: a consumer that hears of a sighting can always look it up.
    await this.history.addSightings(sightings);
    this.stats.sightings += sightings.length;
    const unknownIds = await this.assignUnknowns(sightings);
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
        ...(unknownIds.has(s.id) ? { unknownId: unknownIds.get(s.id) } : {}),
        box: s.box,
        boxTs: s.boxTs,
        vector: vectorToBytes(s.vector),
        crop: s.crop,
      }),
    }));
  }
}
