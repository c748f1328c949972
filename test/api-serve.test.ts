import { describe, expect, it } from "vitest";
import { cliActor, KeyService } from "../lib/api/keys.ts";
import {
  AlertContract,
  CameraStatusContract,
  Topics,
  WatchlistChangeContract,
} from "../lib/contracts/index.ts";
import { testKafka } from "../lib/testing/kafka/index.ts";
import type { ServiceProcess } from "../lib/testing/service-process.ts";
import { SqliteApiStore } from "../lib/store/sqlite-api-store.ts";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import { alertMessage } from "./api-harness.ts";
import { collect, deployment, until } from "./kafka-helpers.ts";
import { freePort } from "../lib/testing/process.ts";

const kafka = await testKafka();

describe.skipIf(!kafka)("vigil serve api: the API as its own process over a real Kafka broker", () => {
  it("stores and streams alerts from Kafka, reports cameras, announces watchlist changes, stops on SIGTERM", async () => {
    const processes: ServiceProcess[] = [];
    const port = await freePort();
    const d = await deployment(kafka!, processes, {
      api: { host: "127.0.0.1", port, sse: { heartbeatS: 1 } },
    });
    try {
      const file = (d.config.store as { path: string }).path;
      const apiStore = new SqliteApiStore(file);
      const { key } = await new KeyService(apiStore, apiStore).create(
        { name: "ops", role: "admin" },
        cliActor(),
      );
      apiStore.close();
      const auth = { authorization: `Bearer ${key}` };
      const base = `http://127.0.0.1:${port}`;
      const changes = await collect(d.bus, Topics.watchlistChanges);

      const api = d.start("api");
      await api.ready(60_000);
      expect((await fetch(`${base}/readyz`)).status).toBe(200);

      const stream = await fetch(`${base}/v1/alerts/stream`, { headers: auth });
      expect(stream.status).toBe(200);
      const reader = stream.body!.getReader();
      let text = "";
      void (async () => {
        for (;;) {
          const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
          if (done) break;
          text += new TextDecoder().decode(value);
        }
      })();

      const now = Date.now();
      await d.bus.publish(Topics.alerts, [
        { key: "vip", value: AlertContract.encode(alertMessage("k-1", "door", "ann", now - 2000, "vip")) },
        { key: "default", value: AlertContract.encode(alertMessage("k-2", "yard", "bo", now - 1000)) },
      ]);
      await d.bus.publish(Topics.cameraStatus, [
        {
          key: "door",
          value: CameraStatusContract.encode({
            cameraId: "door",
            state: "live",
            ts: now,
            lastError: null,
            framesIn: 42,
            framesDropped: 0,
            framesUndecodable: 0,
            reconnects: 0,
          }),
        },
      ]);
      await until(
        "both alerts on the stream",
        () => text.includes('"id":"k-1"') && text.includes('"id":"k-2"'),
        60_000,
      );

      const alerts = (await (await fetch(`${base}/v1/alerts`, { headers: auth })).json()) as {
        items: { id: string }[];
      };
      expect(alerts.items.map((a) => a.id)).toEqual(["k-2", "k-1"]);
      // Stored by the API process in the deployment's store, where the CLI sees them too.
      const store = new SqliteStore(file, { refreshMs: 0 });
      expect((await store.getAlert("k-1"))?.watchlistId).toBe("vip");
      store.close();
      await until("the camera", async () => {
        const c = (await (await fetch(`${base}/v1/cameras/door`, { headers: auth })).json()) as {
          state?: string;
        };
        return c.state === "live";
      });

      // A change made through the API reaches every match replica on vigil.watchlist-changes.
      const put = await fetch(`${base}/v1/people/bo`, {
        method: "PUT",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({ name: "Bo", watchlistId: "staff" }),
      });
      expect(put.status).toBe(201);
      await until("the change on Kafka", () =>
        changes.records.some((r) => WatchlistChangeContract.decode(r.value).personId === "bo"),
      );

      expect(await (await fetch(`${base}/metrics`)).text()).toContain("vigil_api_requests_total");
      expect(await api.metrics()).toMatch(/vigil_api_stream_clients\{[^}]*\} 1/);
      void reader.cancel();
      await changes.stop();
      const exit = await api.kill("SIGTERM");
      expect(exit.code).toBe(0);
    } finally {
      await Promise.all(processes.map((p) => p.kill("SIGKILL")));
    }
  });
});
