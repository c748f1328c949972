import mqtt, { type MqttClient } from "mqtt";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { AlertRecord } from "../../lib/store/alert-store.ts";
import type { MqttMessage, MqttOutboxStore } from "../../lib/store/mqtt-outbox.ts";
import type { Logger } from "../../lib/telemetry/log.ts";
import { within } from "../../lib/util/within.ts";
import { deliveredFaceUrls, type CameraRecorded, type PhotoShown } from "./alert-links.ts";

export interface MqttOptions {
  url: string;
  username?: string;
  password?: string;
  clientId?: string;
  topicPrefix: string;
  /** Base of the face URLs in alert messages; relative without it. */
  publicUrl?: string;
  /** Which cameras' alerts have clips (`clipUrl`); none without it. */
  recorded?: CameraRecorded;
  /** Reconnect delay after the broker goes away (the client keeps trying). */
  reconnectPeriodMs?: number;
  /** How long one replica holds an alert it is publishing before another may take it over. */
  leaseMs: number;
  /** How often each replica looks for alerts no one holds (a dead replica's, ones the broker refused). */
  pollMs: number;
  /** How long a publish may wait for the broker's acknowledgement before it is tried again. */
  ackTimeoutMs: number;
  /** Sent alerts are remembered this long, so one replayed on the bus is still recognised and not sent twice. */
  keepSentMs: number;
}

/**
 * Alerts to an MQTT broker in Home Assistant's style:
 * - `<prefix>/alerts`: every alert as JSON (person, score, camera, the URLs of the face seen and of the enrolled
 *   face it matched), QoS 1;
 * - `<prefix>/<camera>/person`: the last name recognised on that camera, retained, so a dashboard that
 *   subscribes later still sees it;
 * - `<prefix>/available`: `online` once connected (and again every lease: with several replicas a dead one's
 *   last will must not stand while the others serve), `offline` on a clean stop and, through the last will, when
 *   the process dies or loses the broker; retained.
 *
 * With several API replicas, every one sees every alert: each alert goes through the outbox (the API's record
 * store), which one replica at a time claims and publishes at QoS 1, marking it sent on the broker's
 * acknowledgement. So the broker gets each alert once, and a second time (from another replica, once the lease
 * lapses) only if the replica publishing it died before the acknowledgement; `alertId` tells a subscriber so.
 * Alerts wait in the outbox while the broker is away and leave in the order they came (one replica publishes in
 * order; replicas side by side may swap neighbours, and every message carries its alert's `ts`).
 */
export class MqttPublisher {
  private client: MqttClient | undefined;
  /** Alerts wait here for their enrolled photo's lookup, one after another, so they reach the outbox in order. */
  private queue: Promise<void> = Promise.resolve();
  private draining: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private lastPrune = 0;
  readonly claimant = `${hostname()}/${process.pid}/${randomBytes(4).toString("hex")}`;
  readonly stats = { published: 0, errors: 0, retried: 0 };

  constructor(
    private readonly options: MqttOptions,
    private readonly outbox: MqttOutboxStore,
    private readonly log?: Logger,
    /** Where the matched enrolled photo is looked up for `personCropUrl`; without it, null. */
    private readonly watchlist?: PhotoShown,
    private readonly clock: () => number = Date.now,
  ) {}

  private topic(...parts: string[]) {
    return [this.options.topicPrefix, ...parts].join("/");
  }

  get availabilityTopic() {
    return this.topic("available");
  }

  /** Connects (waiting at most `waitMs` for the first connection; it keeps trying after that). */
  async start(waitMs = 5000): Promise<void> {
    const client = mqtt.connect(this.options.url, {
      username: this.options.username,
      password: this.options.password,
      clientId: this.options.clientId ?? `vigil-api-${process.pid}-${Math.random().toString(16).slice(2, 8)}`,
      reconnectPeriod: this.options.reconnectPeriodMs ?? 2000,
      connectTimeout: 10_000,
      will: { topic: this.availabilityTopic, payload: Buffer.from("offline"), qos: 1, retain: true },
    });
    this.client = client;
    client.on("connect", () => {
      this.log?.info({ url: this.options.url }, "mqtt: connected");
      client.publish(this.availabilityTopic, "online", { qos: 1, retain: true });
      this.kick();
    });
    client.on("error", (err) => {
      this.stats.errors++;
      this.log?.warn({ err }, "mqtt: client error");
    });
    let online = Date.now();
    this.timer = setInterval(() => {
      this.kick();
      // With several replicas, one that dies leaves its last will ("offline") retained while the others serve:
      // each live replica says "online" again once a lease, so that lasts no longer than one.
      if (client.connected && Date.now() - online >= this.options.leaseMs) {
        online = Date.now();
        client.publish(this.availabilityTopic, "online", { qos: 1, retain: true });
      }
    }, this.options.pollMs);
    this.timer.unref();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.log?.warn(
          { url: this.options.url },
          "mqtt: broker not reachable yet; alerts are queued meanwhile",
        );
        resolve();
      }, waitMs);
      client.once("connect", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /**
   * The alert sink: resolves once the alert is in the outbox (publishing happens on its own), rejects when it
   * could not be written, so the caller can offer it again. Alerts reach the outbox in the order they came.
   */
  take(alert: AlertRecord): Promise<void> {
    if (!this.client) return Promise.resolve();
    const work = this.queue.then(() => this.offer(alert));
    // One failed alert must not stop the ones queued behind it (nor reject stop()).
    this.queue = work.catch(() => undefined);
    return work;
  }

  /** take() for a caller with nothing to do on failure but say so: returns at once. */
  publishAlert(alert: AlertRecord): void {
    this.take(alert).catch((err: unknown) => {
      this.stats.errors++;
      this.log?.warn({ err, alertId: alert.id }, "mqtt: alert not queued for the broker");
    });
  }

  /** Puts the alert in the outbox, unless a replica (or a replay) put it there first. */
  private async offer(alert: AlertRecord): Promise<void> {
    const faces = await deliveredFaceUrls(
      this.watchlist,
      this.options.publicUrl,
      alert,
      this.log,
      this.options.recorded,
    );
    const body = {
      alertId: alert.id,
      personId: alert.personId,
      name: alert.personName,
      watchlistId: alert.watchlistId,
      score: alert.score,
      threshold: alert.threshold,
      cameraId: alert.cameraId,
      ts: alert.ts,
      ...faces,
    };
    const added = await this.outbox.addMqttMessage({
      id: alert.id,
      payload: JSON.stringify(body),
      cameraId: alert.cameraId,
      personName: alert.personName,
      createdTs: this.clock(),
    });
    if (added) this.kick();
  }

  /** Publishes what is due, once at a time; a call while it runs makes it go round once more. */
  private kick(): void {
    if (this.draining) {
      this.again = true;
      return;
    }
    this.draining = this.drain()
      .catch((err: unknown) => {
        this.stats.errors++;
        this.log?.warn({ err }, "mqtt: the outbox could not be read");
      })
      .finally(() => {
        this.draining = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Claimed at once: as many as the lease covers if each waited its whole acknowledgement time (twice over). */
  private get batch(): number {
    return Math.min(32, Math.max(1, Math.floor(this.options.leaseMs / (2 * this.options.ackTimeoutMs))));
  }

  private async drain(): Promise<void> {
    const { leaseMs, keepSentMs } = this.options;
    if (this.clock() - this.lastPrune > keepSentMs / 4) {
      this.lastPrune = this.clock();
      await this.outbox.pruneMqttMessages(this.lastPrune - keepSentMs);
    }
    // Claimed only while connected: a claim held through an outage would lapse, and another replica would send it
    // too once the broker is back.
    while (this.client?.connected) {
      const batch = await this.outbox.claimMqttMessages(this.claimant, this.clock(), leaseMs, this.batch);
      if (batch.length === 0) return;
      // In order, each acknowledged before the next: subscribers see alerts in the order they came.
      for (const m of batch) await this.publish(m);
    }
  }

  private async publish(m: MqttMessage): Promise<void> {
    const client = this.client;
    if (m.attempts > 1) this.stats.retried++;
    let error: string | null = null;
    try {
      if (!client?.connected) throw new Error("not connected to the broker");
      await within(
        Promise.all([
          client.publishAsync(this.topic("alerts"), m.payload, { qos: 1 }),
          client.publishAsync(this.topic(m.cameraId, "person"), m.personName, { qos: 1, retain: true }),
        ]),
        this.options.ackTimeoutMs,
        "the broker's acknowledgement",
      );
      this.stats.published++;
    } catch (err) {
      this.stats.errors++;
      error = (err as Error).message;
      this.log?.warn({ err, alertId: m.id }, "mqtt: publish failed; it is tried again");
    }
    const now = this.clock();
    await this.outbox.settleMqttMessage(m.id, this.claimant, {
      state: error === null ? "sent" : "pending",
      lastError: error,
      nextAttemptTs: error === null ? null : now + this.options.pollMs,
      updatedTs: now,
    });
  }

  /** Says `offline` itself (a clean stop sends no last will), then disconnects. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.queue;
    await this.draining;
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    if (client.connected)
      await client
        .publishAsync(this.availabilityTopic, "offline", { qos: 1, retain: true })
        .catch(() => undefined);
    await client.endAsync();
  }
}
