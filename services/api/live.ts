import type { Bus, BusRecord, Subscription } from "../../lib/bus/index.ts";
import {
  AlertContract,
  CameraStatusContract,
  FrameContract,
  Topics,
  type AlertMessage,
  type FrameMessage,
} from "../../lib/contracts/index.ts";
import { alertFromMessage, type AlertRecord, type AlertStore } from "../../lib/store/alert-store.ts";
import { encodeCursor } from "../../lib/store/paging.ts";
import type { VigilEvent } from "../../lib/events/events.ts";
import type { Logger } from "../../lib/telemetry/log.ts";

/** A camera's latest status, as the event projection describes it, under the camera's id. */
export type CameraState = Omit<Extract<VigilEvent, { type: "camera" }>, "type" | "cameraId"> & { id: string };

/** An alert as the stream sends it: its record and the event id a client resumes from. */
export interface LiveAlert {
  /** The SSE id: the alert's (time, id) position, so any replica can resume from it through the store. */
  eventId: string;
  /** Arrival order in this process. */
  seq: number;
  alert: AlertRecord;
  /** Every sink has taken it (until then a redelivered batch offers it to them again). */
  sunk?: boolean;
}

/**
 * Told of every alert once it is stored: webhooks, MQTT. Resolves once the alert is safely queued for delivery (a
 * row in the outbox, not the delivery itself, which must not hold the bus consumer up); a rejection holds the
 * batch back, and the bus delivers it again.
 */
export type AlertSink = (alert: AlertRecord, message: AlertMessage) => void | Promise<void>;

export const alertEventId = (a: { ts: number; id: string }) => encodeCursor({ ts: a.ts, id: a.id });

export interface LiveFeedOptions {
  bus: Bus;
  store: Pick<AlertStore, "addAlerts">;
  /** The consumer group: each API process needs every partition, so one group per process. */
  group: string;
  /** Alerts kept for exact resume. */
  replay: number;
  /** Also keep each camera's newest frame (reads vigil.frames). */
  snapshots: boolean;
  /** Alerts published longer ago than this (a replay from the topic's start) skip the sinks. */
  sinkMaxAgeMs: number;
  log?: Logger;
}

/**
 * The API's consumer of the bus, in a group of its own: stores each alert (idempotent by id, so every replica
 * may; an alert a client hears of can be acknowledged or excluded at once), keeps the newest alerts for
 * Last-Event-ID resume, fans them out to live streams and sinks, and keeps the latest status per camera.
 */
export class LiveFeed {
  readonly cameras = new Map<string, CameraState>();
  private readonly frames = new Map<string, FrameMessage>();
  private ring: LiveAlert[] = [];
  private readonly byEventId = new Map<string, LiveAlert>();
  /** Kept alerts by alert id: a redelivered batch finds what it already streamed. */
  private readonly seen = new Map<string, LiveAlert>();
  private seq = 0;
  private readonly listeners = new Set<(a: LiveAlert) => void>();
  private readonly sinks: AlertSink[] = [];
  private subscription: Subscription | undefined;
  readonly stats = { alerts: 0, statuses: 0, duplicates: 0 };

  constructor(private readonly options: LiveFeedOptions) {}

  async start(): Promise<void> {
    const topics: string[] = [Topics.alerts, Topics.cameraStatus];
    if (this.options.snapshots) topics.push(Topics.frames);
    this.subscription = await this.options.bus.subscribe(
      topics,
      { group: this.options.group, maxBatch: 64 },
      (records) => this.handle(records),
    );
  }

  async stop(): Promise<void> {
    await this.subscription?.stop();
    this.subscription = undefined;
    this.listeners.clear();
  }

  addSink(sink: AlertSink): void {
    this.sinks.push(sink);
  }

  /** Live alerts from now on; returns the unsubscribe. */
  listen(listener: (a: LiveAlert) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Alerts that arrived after the one with this event id, in arrival order; undefined if it is not kept. */
  after(eventId: string): LiveAlert[] | undefined {
    const found = this.byEventId.get(eventId);
    if (!found) return undefined;
    return this.ring.filter((a) => a.seq > found.seq);
  }

  snapshot(cameraId: string): FrameMessage | undefined {
    return this.frames.get(cameraId);
  }

  /** Cameras with a kept frame (a camera can be seen in frames before its first status record). */
  snapshotCameras(): string[] {
    return [...this.frames.keys()];
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  private async handle(records: BusRecord[]): Promise<void> {
    const alerts: AlertMessage[] = [];
    const published = new Map<string, number>();
    for (const r of records) {
      try {
        if (r.topic === Topics.alerts) {
          const m = AlertContract.decode(r.value);
          alerts.push(m);
          published.set(m.alertId, r.timestamp);
        } else if (r.topic === Topics.cameraStatus) {
          const s = CameraStatusContract.decode(r.value);
          const prev = this.cameras.get(s.cameraId);
          // Status records of one camera keep their order on its partition; the newest capture time wins anyway.
          if (!prev || prev.ts <= s.ts) {
            const { cameraId, ...rest } = s;
            this.cameras.set(cameraId, { id: cameraId, ...rest });
          }
          this.stats.statuses++;
        } else if (r.topic === Topics.frames) {
          const f = FrameContract.decode(r.value);
          const prev = this.frames.get(f.cameraId);
          // One kept frame a second is plenty for a snapshot, and copies a megabyte a second, not forty.
          if (prev && f.captureTs >= prev.captureTs && f.captureTs - prev.captureTs < 1000) continue;
          // A copy, not a view: the record's bytes may be a buffer the producer reuses.
          this.frames.set(f.cameraId, { ...f, image: Uint8Array.from(f.image) });
        }
      } catch (err) {
        // Not ours to dead-letter (the producing stage's runner does); skip what cannot be read.
        this.options.log?.warn({ err, topic: r.topic, key: r.key }, "api: unreadable record skipped");
      }
    }
    if (alerts.length === 0) return;
    // Stored before anyone hears of it; a failure rejects the batch and the bus delivers it again.
    await this.options.store.addAlerts(alerts.map((m) => alertFromMessage(m)));
    const toSinks: { live: LiveAlert; message: AlertMessage }[] = [];
    for (const m of alerts) {
      let live = this.seen.get(m.alertId);
      if (live) {
        this.stats.duplicates++;
      } else {
        const { crop: _crop, ...record } = alertFromMessage(m);
        const alert: AlertRecord = { ...record, acknowledged: null };
        delete (alert as { vector?: unknown }).vector;
        live = { eventId: alertEventId(alert), seq: ++this.seq, alert };
        this.remember(live);
        this.stats.alerts++;
        for (const listener of this.listeners) listener(live);
      }
      // A new consumer group starts at the beginning of the topic: days-old alerts are stored and kept for
      // resume, but not sent to MQTT and webhooks as if they had just happened.
      if (live.sunk || Date.now() - (published.get(m.alertId) ?? 0) > this.options.sinkMaxAgeMs) continue;
      toSinks.push({ live, message: m });
    }
    // Every sink takes every alert before the batch is done: one that cannot (its database is away) rejects the
    // batch, so the offsets are not committed and the alerts come again, to the sinks that have not taken them.
    const failures: unknown[] = [];
    for (const { live, message } of toSinks) {
      const taken = await Promise.allSettled(this.sinks.map(async (sink) => sink(live.alert, message)));
      const failed = taken.filter((t): t is PromiseRejectedResult => t.status === "rejected");
      if (failed.length === 0) live.sunk = true;
      else failures.push(...failed.map((f) => f.reason));
    }
    if (failures.length > 0) {
      this.options.log?.warn(
        { err: failures[0], alerts: failures.length },
        "api: alerts not queued for delivery; the batch comes again",
      );
      throw new Error(`${failures.length} alert(s) not queued for delivery: ${String(failures[0])}`);
    }
  }

  private remember(live: LiveAlert) {
    this.ring.push(live);
    this.byEventId.set(live.eventId, live);
    this.seen.set(live.alert.id, live);
    // Trim in chunks: an array shift per alert is O(n).
    if (this.ring.length > this.options.replay * 1.25) {
      const dropped = this.ring.splice(0, this.ring.length - this.options.replay);
      for (const d of dropped) {
        this.byEventId.delete(d.eventId);
        this.seen.delete(d.alert.id);
      }
    }
  }
}
