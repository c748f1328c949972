import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { AlertRecord } from "../lib/store/alert-store.ts";
import { PostgresApiStore } from "../lib/store/postgres/api-store.ts";
import { MosquittoBroker, mosquittoUnavailableReason, mqttSubscriber } from "../lib/testing/mqtt/broker.ts";
import { until } from "../lib/testing/process.ts";
import { MqttPublisher, type MqttOptions } from "../services/api/mqtt.ts";
import { skipReason } from "./helpers.ts";
import { usePostgres } from "./postgres-helpers.ts";

const unavailable = mosquittoUnavailableReason();
if (unavailable) skipReason("MQTT from several API replicas", unavailable);
const postgres = usePostgres("MQTT from several API replicas");

const alert = (id: string, ts: number): AlertRecord => ({
  id,
  watchlistId: "default",
  personId: "ann",
  personName: "Ann",
  cameraId: "door",
  ts,
  score: 0.9,
  threshold: 0.5,
  modelId: "m",
  faceId: `f-${id}`,
  box: { x: 0, y: 0, width: 10, height: 10 },
  matchedFaceId: null,
  acknowledged: null,
});

const alertIds = (messages: { topic: string; payload: string }[]) =>
  messages
    .filter((m) => m.topic === "vigil/alerts")
    .map((m) => (JSON.parse(m.payload) as { alertId: string }).alertId);

describe.skipIf(unavailable !== undefined || postgres.skip !== undefined)(
  "MQTT from several API replicas on one PostgreSQL, against a real Mosquitto",
  () => {
    let broker: MosquittoBroker;
    const closing: (() => Promise<unknown> | unknown)[] = [];
    const options = (url: string): MqttOptions => ({
      url,
      topicPrefix: "vigil",
      leaseMs: 1500,
      pollMs: 100,
      ackTimeoutMs: 500,
      keepSentMs: 3_600_000,
      reconnectPeriodMs: 200,
    });
    /** One replica: its own pool on the shared database, its own client. */
    const replica = async (dbUrl: string, extra: Partial<MqttOptions> = {}) => {
      const store = await PostgresApiStore.open(dbUrl);
      const publisher = new MqttPublisher({ ...options(broker.url), ...extra }, store);
      await publisher.start();
      // Closed in reverse: the publisher stops before its store does.
      closing.push(
        () => store.close(),
        () => publisher.stop(),
      );
      return { store, publisher };
    };

    beforeAll(async () => {
      broker = await MosquittoBroker.start();
    });
    afterEach(async () => {
      for (const close of closing.splice(0).reverse()) await close();
    });
    afterAll(async () => {
      await broker?.stop();
    });

    it("every replica offered every alert: the broker gets each once", async () => {
      const url = await postgres.database();
      const watch = await mqttSubscriber(broker.url, ["vigil/alerts"]);
      closing.push(() => watch.client.endAsync());
      const replicas = [await replica(url), await replica(url), await replica(url)];
      const ids = Array.from({ length: 30 }, (_, i) => `al-${String(i).padStart(2, "0")}`);
      const t0 = Date.now();
      for (const [i, id] of ids.entries())
        for (const r of replicas) r.publisher.publishAlert(alert(id, t0 + i));
      await until("every alert on the broker", () => alertIds(watch.messages).length >= ids.length, 20_000);
      // Time for a duplicate to show, were there one: several polls and more than a lease.
      await new Promise((r) => setTimeout(r, 2000));
      // Each once; replicas publish side by side, so neighbours may swap (each message carries its alert's ts).
      expect(alertIds(watch.messages).sort()).toEqual(ids);
      const published = () => replicas.reduce((n, r) => n + r.publisher.stats.published, 0);
      expect(published()).toBe(ids.length);
    });

    it("a replica dies holding alerts: another publishes them once its lease lapses, each once", async () => {
      const url = await postgres.database();
      const watch = await mqttSubscriber(broker.url, ["vigil/alerts"]);
      closing.push(() => watch.client.endAsync());
      // The dead replica took these and was gone before the broker had them.
      const dead = await PostgresApiStore.open(url);
      const held = ["d-1", "d-2", "d-3"];
      const now = Date.now();
      try {
        for (const [i, id] of held.entries())
          await dead.addMqttMessage({
            id,
            payload: JSON.stringify({ alertId: id }),
            cameraId: "door",
            personName: "Ann",
            createdTs: now + i,
          });
        expect((await dead.claimMqttMessages("dead/1/x", now + 10, 1500, 10)).map((m) => m.id)).toEqual(held);
      } finally {
        await dead.close();
      }
      const survivor = await replica(url);
      survivor.publisher.publishAlert(alert("after", now + 100));
      await until("the survivor's own alert", () => alertIds(watch.messages).includes("after"), 10_000);
      expect(alertIds(watch.messages)).toEqual(["after"]);
      await until("the dead replica's alerts", () => alertIds(watch.messages).length === 4, 10_000);
      expect(Date.now() - now).toBeGreaterThanOrEqual(1500);
      expect(alertIds(watch.messages)).toEqual(["after", ...held]);
      expect(survivor.publisher.stats.retried).toBe(3);
    });

    it("one replica's last will says offline; a live one says online again within a lease", async () => {
      const url = await postgres.database();
      // a never reconnects (it is dead), so only b can say online again.
      const [a] = [await replica(url, { reconnectPeriodMs: 0 }), await replica(url)];
      const watch = await mqttSubscriber(broker.url, ["vigil/available"]);
      closing.push(() => watch.client.endAsync());
      await until("the retained online", () => watch.messages.length > 0);
      // No DISCONNECT packet: to the broker, replica a crashed.
      (a.publisher as unknown as { client: { stream: { destroy(): void } } }).client.stream.destroy();
      await until("a's last will", () => watch.messages.some((m) => m.payload === "offline"));
      const willAt = Date.now();
      await until("online again", () => watch.messages.at(-1)?.payload === "online", 5000);
      expect(Date.now() - willAt).toBeLessThanOrEqual(1500 + 500);
    });

    it("alerts wait in the outbox while the broker is away and leave in order once it is back", async () => {
      const url = await postgres.database();
      const r = await replica(url);
      const port = broker.port;
      await broker.stop();
      await until("the client to notice", () => !r.publisher.connected, 10_000);
      const ids = ["w-1", "w-2", "w-3", "w-4"];
      for (const [i, id] of ids.entries()) r.publisher.publishAlert(alert(id, Date.now() + i));
      // Nothing claimed while disconnected: another replica could take them when the broker returns.
      await new Promise((res) => setTimeout(res, 500));
      broker = await MosquittoBroker.start(port);
      const watch = await mqttSubscriber(broker.url, ["vigil/alerts"]);
      closing.push(() => watch.client.endAsync());
      // Published once the publisher reconnects (the subscriber may attach before or after that).
      await until("the queued alerts", () => alertIds(watch.messages).length === ids.length, 15_000);
      expect(alertIds(watch.messages)).toEqual(ids);
      // Counted on the broker's acknowledgement, which may come after the subscriber has the message.
      await until("every acknowledgement", () => r.publisher.stats.published === ids.length, 5000);
    });
  },
);
