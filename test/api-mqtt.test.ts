import path from "node:path";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliActor, KeyService } from "../lib/api/keys.ts";
import { MemoryBus } from "../lib/bus/index.ts";
import { SqliteApiStore } from "../lib/store/sqlite-api-store.ts";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import type { RunningApi } from "../services/api/index.ts";
import {
  BLUE,
  RED,
  alertMessage,
  enrolColours,
  listeningApi,
  matchAndPublish,
  meanColour,
  publishAlerts,
  vec,
} from "./api-harness.ts";
import { skipReason, tempDir, testConfig } from "./helpers.ts";
import { MosquittoBroker, mosquittoUnavailableReason, mqttSubscriber } from "../lib/testing/mqtt/broker.ts";
import { until } from "../lib/testing/process.ts";

const unavailable = mosquittoUnavailableReason();
if (unavailable) skipReason("the MQTT tests", unavailable);

describe.skipIf(unavailable !== undefined)("alerts to MQTT, against a real Mosquitto broker", () => {
  let broker: MosquittoBroker;
  let url: string;
  let api: RunningApi;
  const watchers: MqttClient[] = [];
  const dir = tempDir("vigil-mqtt-");
  const file = path.join(dir, "vigil.db");
  const store = new SqliteStore(file, { refreshMs: 0 });
  const apiStore = new SqliteApiStore(file);
  const bus = new MemoryBus({ capacity: 64 });

  beforeAll(async () => {
    broker = await MosquittoBroker.start();
    url = broker.url;
    const config = testConfig({
      "store.path": file,
      "api.mqtt.url": url,
      "api.mqtt.publicUrl": "https://vigil.example/",
    });
    api = await listeningApi({ config, bus, store, apiStore }, "api-mqtt");
  });

  afterAll(async () => {
    for (const w of watchers) await w.endAsync().catch(() => {});
    await api?.stop();
    await bus.close();
    apiStore.close();
    store.close();
    await broker?.stop();
  });

  it("says online on vigil/available (retained) once connected; /readyz includes the broker", async () => {
    const late = await mqttSubscriber(url, ["vigil/available"]);
    watchers.push(late.client);
    await until("the retained availability", () => late.messages.length > 0);
    expect(late.messages[0]).toEqual({ topic: "vigil/available", payload: "online", retain: true });
    const ready = (await (await fetch(`${api.url}/readyz`)).json()) as { checks: Record<string, boolean> };
    expect(ready.checks.mqtt).toBe(true);
  });

  it("publishes each alert on vigil/alerts and the name on vigil/<camera>/person, retained", async () => {
    const live = await mqttSubscriber(url, ["vigil/alerts", "vigil/+/person"]);
    watchers.push(live.client);
    const ts = Date.now() - 1000;
    await publishAlerts(bus, [
      alertMessage("m-1", "door", "ann", ts, "vip"),
      alertMessage("m-2", "yard", "bo", ts + 500),
    ]);
    await until("two alerts and two names", () => live.messages.length >= 4);
    const alerts = live.messages.filter((m) => m.topic === "vigil/alerts").map((m) => JSON.parse(m.payload));
    expect(alerts).toEqual([
      {
        alertId: "m-1",
        personId: "ann",
        name: "ANN",
        watchlistId: "vip",
        score: 0.9,
        threshold: 0.5,
        cameraId: "door",
        ts,
        cropUrl: "https://vigil.example/v1/alerts/m-1/crop",
        // ann has no enrolled photo yet.
        personCropUrl: null,
        // Cameras are not recorded here.
        clipUrl: null,
      },
      expect.objectContaining({ alertId: "m-2", cameraId: "yard", name: "BO" }),
    ]);
    expect(live.messages.filter((m) => m.topic.endsWith("/person")).map((m) => [m.topic, m.payload])).toEqual(
      [
        ["vigil/door/person", "ANN"],
        ["vigil/yard/person", "BO"],
      ],
    );
    // A dashboard that subscribes later still learns who was last seen at the door.
    const later = await mqttSubscriber(url, ["vigil/door/person"]);
    watchers.push(later.client);
    await until("the retained name", () => later.messages.length > 0);
    expect(later.messages[0]).toEqual({ topic: "vigil/door/person", payload: "ANN", retain: true });
  });

  it("names the enrolled photo that matched beside the face seen, as absolute URLs that serve them", async () => {
    const live = await mqttSubscriber(url, ["vigil/alerts"]);
    watchers.push(live.client);
    // Two photos of ann (colours stand for faces); the camera sees a face close to the second.
    await enrolColours(store, "ann", { "ann-1.jpg": RED, "ann-2.jpg": BLUE });
    const [matched] = await matchAndPublish(bus, store, {
      cameraId: "porch",
      ts: Date.now(),
      vector: vec(0.1, 0.1, 1),
    });
    await until("the alert", () => live.messages.length > 0);
    const body = JSON.parse(live.messages[0]!.payload) as Record<string, string>;
    expect(body).toMatchObject({
      alertId: matched!.alertId,
      personId: "ann",
      cropUrl: `https://vigil.example/v1/alerts/${encodeURIComponent(matched!.alertId)}/crop`,
      personCropUrl: "https://vigil.example/v1/people/ann/photos/ann-2.jpg/crop",
    });
    // The public address fronts this API: its path serves the blue photo that matched, to an operator's key.
    const { key } = await new KeyService(apiStore, apiStore).create(
      { name: "phone", role: "operator" },
      cliActor(),
    );
    const res = await fetch(`${api.url}${new URL(body.personCropUrl!).pathname}`, {
      headers: { authorization: `Bearer ${key}` },
    });
    expect(res.status).toBe(200);
    const enrolled = await meanColour(new Uint8Array(await res.arrayBuffer()));
    expect(enrolled.b - enrolled.r).toBeGreaterThan(150);
  });

  it("the broker announces offline through the last will when the connection dies, online again on reconnect", async () => {
    const watch = await mqttSubscriber(url, ["vigil/available"]);
    watchers.push(watch.client);
    await until("the retained online", () => watch.messages.length > 0);
    // No DISCONNECT packet: to the broker this is a crashed process.
    (api.mqtt as unknown as { client: { stream: { destroy(): void } } }).client.stream.destroy();
    await until("the last will", () => watch.messages.some((m) => m.payload === "offline"));
    await until("the reconnection", () => watch.messages.at(-1)?.payload === "online", 15_000);
    expect(watch.messages.map((m) => m.payload)).toEqual(["online", "offline", "online"]);
  });

  it("says offline itself on a clean stop (retained)", async () => {
    await api.stop();
    const after = await mqttSubscriber(url, ["vigil/available"]);
    watchers.push(after.client);
    await until("the retained offline", () => after.messages.length > 0);
    expect(after.messages[0]).toEqual({ topic: "vigil/available", payload: "offline", retain: true });
  });
});
