import { keepsSightingClips } from "../../lib/media/camera-url.ts";
import type { Bus, Subscription } from "../../lib/bus/index.ts";
import { AlertContract, SightingContract, Topics } from "../../lib/contracts/index.ts";
import {
  archivedSegments,
  joinSegments,
  segmentName,
  segmentsBetween,
  type CameraRecording,
  type Segment,
} from "../../lib/media/recording.ts";
import { isTransient } from "../../lib/runtime/errors.ts";
import path from "node:path";
import type { Config } from "../../lib/config/index.ts";
import { ClipStore, type ClipInfo, type ClipKind } from "../../lib/store/clip-store.ts";
import { openCropStore } from "../../lib/store/open-store.ts";
import { recordRoot } from "./camera.ts";

/** A clip to cut: the record it is for, and the span of video it should hold. */
export interface ClipRequest {
  kind: ClipKind;
  id: string;
  cameraId: string;
  /** The record's time (an alert's, a sighting's start). */
  ts: number;
  from: number;
  to: number;
}

/** A clip, or why there is none (stored too, when the record is this process's camera's). */
export type ClipOutcome = { clip: ClipInfo } | { none: string };

export interface ClipCutterOptions {
  /** Where segments are joined before the clip is stored. */
  scratch: string;
  clock?: () => number;
  /** How often a waiting clip looks for the segment that completes it. */
  pollMs?: number;
  log?: (message: string) => void;
}

const iso = (ts: number) => new Date(ts).toISOString();
const keepsSightings = (r: CameraRecording) => keepsSightingClips(r.spec.keep);

/**
 * Cuts clips for the records of the cameras this process records: from their rolling recordings, once the
 * post-roll is on disk (the segment holding a clip's end is listed when it is finished, at most a segment and a
 * keyframe interval after it), into the clip store. A camera that drops before then gives a clip that ends where
 * its video ends, and says so; a record older than the recording gives none, and says why.
 */
export class ClipCutter {
  private readonly clock: () => number;
  private readonly pollMs: number;

  constructor(
    private readonly recordings: Map<string, CameraRecording>,
    readonly clips: ClipStore,
    private readonly options: ClipCutterOptions,
  ) {
    this.clock = options.clock ?? Date.now;
    this.pollMs = options.pollMs ?? 250;
  }

  /** Whether any camera here keeps clips of `kind`. */
  cuts(kind: ClipKind): boolean {
    return [...this.recordings.values()].some((r) => kind === "alerts" || keepsSightings(r));
  }

  /** The clip an alert calls for, when its camera is recorded here. */
  forAlert(a: { alertId: string; cameraId: string; ts: number }): ClipRequest | undefined {
    const r = this.recordings.get(a.cameraId);
    if (!r) return undefined;
    const { preRollS, postRollS } = r.spec;
    return {
      kind: "alerts",
      id: a.alertId,
      cameraId: a.cameraId,
      ts: a.ts,
      from: a.ts - preRollS * 1000,
      to: a.ts + postRollS * 1000,
    };
  }

  /** The clip a sighting calls for, when its camera is recorded here and keeps sightings' clips. */
  forSighting(s: { sightingId: string; cameraId: string; startTs: number; endTs: number }) {
    const r = this.recordings.get(s.cameraId);
    if (!r || !keepsSightings(r)) return undefined;
    const { preRollS, postRollS } = r.spec;
    return {
      kind: "sightings" as const,
      id: s.sightingId,
      cameraId: s.cameraId,
      ts: s.startTs,
      from: s.startTs - preRollS * 1000,
      to: s.endTs + postRollS * 1000,
    };
  }

  /**
   * Waits for the video up to `to` (or for the camera's video to stop), then joins and stores the clip. A clip
   * already stored (a redelivered record) is not cut again.
   */
  async cut(req: ClipRequest): Promise<ClipOutcome> {
    const recording = this.recordings.get(req.cameraId);
    if (!recording) return { none: `camera ${req.cameraId} is not recorded here` };
    const stored = await this.clips.info(req.kind, req.id, req.ts);
    if (stored) return stored.none ? { none: stored.none } : { clip: stored };
    if (recording.off) {
      const none = `camera ${req.cameraId} is not recorded: ${recording.off}`;
      const { kind, id, cameraId, ts, from, to } = req;
      await this.clips.putNone({ kind, id, cameraId, ts, from, to }, none, this.clock());
      return { none };
    }
    const { segmentS } = recording.spec;
    // A finished segment lists at most a segment (and the keyframe it waits for) after its end; silence for
    // twice that means the video stopped.
    const quietMs = 2 * segmentS * 1000 + 2000;
    let pinned: Segment[] = [];
    try {
      let newest = 0;
      let changedAt = this.clock();
      let all: Segment[];
      for (;;) {
        all = recording.segments();
        const covering = segmentsBetween(all, req.from, req.to);
        recording.pin(covering);
        recording.unpin(pinned);
        pinned = covering;
        const last = all.at(-1)?.end ?? 0;
        if (last > newest) {
          newest = last;
          changedAt = this.clock();
        }
        if (last >= req.to) break;
        if (this.clock() - changedAt > quietMs && this.clock() > req.to) break;
        await new Promise((r) => setTimeout(r, this.pollMs));
      }
      // What the last look found (and pinned): the recording as it stood when the wait ended. With keep: all,
      // what had left the buffer (a sighting longer than it, a record redelivered after a restart) is archived.
      let segments = pinned;
      if (recording.spec.keep === "all") {
        const held = new Set(pinned.map((s) => segmentName(s.file)));
        const archived = archivedSegments(recording.spec.dir, req.from, req.to).filter(
          (s) => !held.has(segmentName(s.file)),
        );
        segments = [...archived, ...pinned].sort((a, b) => a.start - b.start);
      }
      if (segments.length === 0) {
        const oldest = all[0]?.start;
        const none =
          oldest !== undefined && oldest > req.to
            ? `the recording no longer reaches back to ${iso(req.from)} (it starts at ${iso(oldest)})`
            : `no video of camera ${req.cameraId} was recorded between ${iso(req.from)} and ${iso(req.to)}`;
        const { kind, id, cameraId, ts, from, to } = req;
        await this.clips.putNone({ kind, id, cameraId, ts, from, to }, none, this.clock());
        return { none };
      }
      const video = await joinSegments(segments, this.options.scratch);
      const short = [
        video.start > req.from + 1000 ? `the video starts at ${iso(video.start)}, not ${iso(req.from)}` : "",
        video.end < req.to - 1000 ? `the camera's video stops at ${iso(video.end)}` : "",
      ]
        .filter(Boolean)
        .join("; ");
      const clip = await this.clips.put(
        {
          kind: req.kind,
          id: req.id,
          cameraId: req.cameraId,
          ts: req.ts,
          start: video.start,
          end: video.end,
          from: req.from,
          to: req.to,
          short: short || null,
          ...(recording.spec.frame ? { frame: recording.spec.frame } : {}),
        },
        video.data,
        this.clock(),
      );
      return { clip };
    } finally {
      recording.unpin(pinned);
    }
  }

  /**
   * Cuts the clips `vigil.alerts` (and, where kept, `vigil.sightings`) call for on this process's cameras, in its
   * own consumer group: a record's offset is committed once its clip is stored or known impossible, so a restart
   * cuts again what was waiting (from the recording still on disk). A clip store that is away fails the batch
   * (redelivered); a clip that cannot be joined is reported and skipped.
   */
  async subscribe(bus: Bus, group: string): Promise<Subscription[]> {
    const log = this.options.log ?? (() => {});
    const run = async (req: ClipRequest | undefined) => {
      if (!req) return;
      try {
        const outcome = await this.cut(req);
        if ("none" in outcome) log(`no clip for ${req.kind} ${req.id}: ${outcome.none}`);
        else if (outcome.clip.short) log(`clip for ${req.kind} ${req.id} is short: ${outcome.clip.short}`);
      } catch (err) {
        if (isTransient(err)) throw err;
        log(`no clip for ${req.kind} ${req.id}: ${(err as Error).message}`);
      }
    };
    // A record that does not decode is the stages' to dead-letter (they read these topics too): skipped here.
    const decoded = <T>(decode: () => T): T | undefined => {
      try {
        return decode();
      } catch (err) {
        log(`skipping a record that does not decode: ${(err as Error).message}`);
        return undefined;
      }
    };
    const subscriptions = [
      await bus.subscribe(Topics.alerts, { group, maxBatch: 32 }, async (records) => {
        await Promise.all(
          records.map((r) => {
            const a = decoded(() => AlertContract.decode(r.value));
            return run(a && this.forAlert(a));
          }),
        );
      }),
    ];
    if (this.cuts("sightings"))
      subscriptions.push(
        await bus.subscribe(Topics.sightings, { group, maxBatch: 32 }, async (records) => {
          await Promise.all(
            records.map((r) => {
              const s = decoded(() => SightingContract.decode(r.value));
              return run(s && this.forSighting(s));
            }),
          );
        }),
      );
    return subscriptions;
  }
}

/**
 * Clip cutting for an ingest process's recorded cameras (`vigil serve ingest`, `vigil run`), in consumer group
 * `group` (each ingest shard its own: every shard hears every alert and cuts those of its cameras). Undefined
 * when no camera here is recorded.
 */
export async function startClipCutting(
  config: Config,
  bus: Bus,
  recordings: Map<string, CameraRecording>,
  group: string,
  log: (message: string) => void,
): Promise<{ stop(): Promise<void> } | undefined> {
  if (recordings.size === 0) return undefined;
  const crops = openCropStore(config);
  const cutter = new ClipCutter(recordings, new ClipStore(crops), {
    scratch: path.join(recordRoot(config), ".joining"),
    log,
  });
  const subscriptions = await cutter.subscribe(bus, group);
  return {
    stop: async () => {
      for (const s of subscriptions) await s.stop();
      crops.close();
    },
  };
}
