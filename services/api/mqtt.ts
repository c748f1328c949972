import mqtt, { type MqttClient } from "mqtt";
import type { AlertRecord } from "../../lib/store/alert-store.ts";
import type { Logger } from "../../lib/telemetry/log.ts";
import { deliveredFaceUrls, type PhotoShown } from "./alert-links.ts";

export interface MqttOptions {
  url: string;
  username?: string;
  password?: string;
  clientId?: string;
  topicPrefix: string;
  /** Base of the face URLs in alert messages; relative without it. */
  publicUrl?: string;
  /** Reconnect delay after the broker goes away (the client keeps trying). */
  reconnectPeriodMs?: number;
}

/**
 * Alerts to an MQTT broker in Home Assistant's style:
 * - `<prefix>/alerts`: every alert as JSON (person, score, camera, the URLs of the face seen and of the enrolled
 *   face it matched), QoS 1;
 * - `<prefix>/<camera>/person`: the last name recognised on that camera, retained, so a dashboard that
 *   subscribes later still sees it;
 * - `<prefix>/available`: `online` once connected, `offline` on a clean stop and, through the last will, when
 *   the process dies or loses the broker; retained.
 * Publishing never waits for the broker: the client queues while it reconnects.
 */
export class MqttPublisher {
  private client: MqttClient | undefined;
  /** Alerts wait here for their enrolled photo's lookup, one after another, so they leave in arrival order. */
  private queue: Promise<void> = Promise.resolve();
  readonly stats = { published: 0, errors: 0 };

  constructor(
    private readonly options: MqttOptions,
    private readonly log?: Logger,
    /** Where the matched enrolled photo is looked up for `personCropUrl`; without it, null. */
    private readonly watchlist?: PhotoShown,
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
    });
    client.on("error", (err) => {
      this.stats.errors++;
      this.log?.warn({ err }, "mqtt: client error");
    });
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

  /** The alert sink: returns at once. */
  publishAlert(alert: AlertRecord): void {
    if (!this.client) return;
    // One failed alert must not stop the ones queued behind it (nor reject stop()).
    this.queue = this.queue
      .then(() => this.publish(alert))
      .catch((err: unknown) => {
        this.stats.errors++;
        this.log?.warn({ err, alertId: alert.id }, "mqtt: alert not published");
      });
  }

  private async publish(alert: AlertRecord): Promise<void> {
    const faces = await deliveredFaceUrls(this.watchlist, this.options.publicUrl, alert, this.log);
    const client = this.client;
    if (!client) return;
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
    const done = (err?: Error) => {
      if (err) {
        this.stats.errors++;
        this.log?.warn({ err, alertId: alert.id }, "mqtt: publish failed");
      } else this.stats.published++;
    };
    client.publish(this.topic("alerts"), JSON.stringify(body), { qos: 1 }, done);
    client.publish(this.topic(alert.cameraId, "person"), alert.personName, { qos: 1, retain: true }, done);
  }

  /** Says `offline` itself (a clean stop sends no last will), then disconnects. */
  async stop(): Promise<void> {
    await this.queue;
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
