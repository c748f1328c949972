import { readFileSync } from "node:fs";

import path from "node:path";
import { describe, expect, it } from "vitest";
import { runEmbedded } from "../cli/commands/run.ts";
import { cliActor, KeyService } from "../lib/api/keys.ts";
import { cropLargestFace, samplePhotos, slideshowVideo } from "../lib/media/sample-media.ts";
import { openApiStore } from "../lib/store/open-store.ts";
import { alertEventId } from "../services/api/live.ts";
import { form } from "./api-harness.ts";
import { collect, ofType, sharedVision, tempDir, testConfig } from "./helpers.ts";
import { until as pollUntil, freePort } from "../lib/testing/process.ts";

/** Polls every 100 ms: the API is rate-limited per key (api.rateLimit): polling it faster would be refused. */
const until = <T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs?: number) =>
  pollUntil(what, fn, timeoutMs, 100);

describe("vigil run --api: the API inside the embedded process, on its bus and store", () => {
  it("streams the run's alerts, lists cameras, alerts and people, and searches by photo", async () => {
    const vision = await sharedVision();
    const dir = tempDir("vigil-run-api-");
    const config = testConfig({ "store.path": path.join(dir, "vigil.db"), "ingest.fps": 5 });
    const photos = await samplePhotos(path.resolve(".vigil/cache"));
    const video = path.join(dir, "slideshow.mp4");
    await slideshowVideo([photos[0]!, photos[1]!, photos[3]!], video, {
      secondsEach: 1.5,
      width: 960,
      height: 540,
    });
    const face = path.join(dir, "watchlist", "alice", "face.jpg");
    await cropLargestFace(vision, photos[0]!, face);
    // A key made beforehand, as `vigil keys create` would, in the run's own store file.
    const apiStore = await openApiStore(config);
    const keys = new KeyService(apiStore, apiStore);
    const { key } = await keys.create({ name: "desk", role: "operator" }, cliActor());
    await apiStore.close();
    const auth = { authorization: `Bearer ${key}` };

    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const abort = new AbortController();
    const { events, emit } = collect();
    const run = runEmbedded(
      config,
      vision,
      {
        source: [video],
        watchlist: path.join(dir, "watchlist"),
        events: "ndjson",
        api: `127.0.0.1:${port}`,
        signal: abort.signal,
      },
      emit,
    );
    try {
      await until("the API", async () => (await fetch(`${base}/healthz`)).ok);
      // Everything since the epoch: the store's alerts first, then live ones, whenever this connects.
      const stream = await fetch(`${base}/v1/alerts/stream`, {
        headers: { ...auth, "last-event-id": alertEventId({ ts: 0, id: "" }) },
      });
      expect(stream.status).toBe(200);
      const reader = stream.body!.getReader();
      let text = "";
      const streamed = new Set<string>();
      void (async () => {
        for (;;) {
          const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
          if (done) break;
          text += new TextDecoder().decode(value);
          for (const m of text.matchAll(/^data: (.*)$/gm))
            streamed.add((JSON.parse(m[1]!) as { id: string }).id);
        }
      })();

      await until("the run's summary", async () => ofType(events, "summary").length > 0, 120_000);
      const alerts = ofType(events, "alert");
      expect(alerts.length).toBeGreaterThanOrEqual(1);
      await until(
        "every alert on the stream",
        async () => alerts.every((a) => streamed.has(a.alertId)),
        10_000,
      );

      const listed = (await (await fetch(`${base}/v1/alerts`, { headers: auth })).json()) as {
        items: { id: string; personId: string }[];
      };
      expect(listed.items.map((a) => a.id).sort()).toEqual(alerts.map((a) => a.alertId).sort());
      expect(listed.items.every((a) => a.personId === "alice")).toBe(true);

      const cameras = (await (await fetch(`${base}/v1/cameras`, { headers: auth })).json()) as {
        items: { id: string; state: string; framesIn: number }[];
      };
      expect(cameras.items).toEqual([expect.objectContaining({ id: "cam-1", state: "ended" })]);
      expect(cameras.items[0]!.framesIn).toBeGreaterThan(10);

      const people = (await (await fetch(`${base}/v1/people`, { headers: auth })).json()) as {
        items: { id: string }[];
      };
      expect(people.items.map((p) => p.id)).toEqual(["alice"]);

      // The run's sightings, searched by the watchlist photo with the run's own models.
      const f = await form({ limit: "5" }, [{ name: "alice.jpg", bytes: readFileSync(face) }]);
      const search = await fetch(`${base}/v1/sightings/search`, {
        method: "POST",
        headers: { ...auth, ...f.headers },
        body: f.payload,
      });
      expect(search.status).toBe(200);
      const hits = (await search.json()) as {
        hits: { samePerson: boolean; sighting: { match: { personId: string } | null } }[];
      };
      expect(hits.hits[0]).toMatchObject({ samePerson: true, sighting: { match: { personId: "alice" } } });
      void reader.cancel();
    } finally {
      abort.abort();
      await run;
    }
    // Stopped: nothing listens any more.
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  });
});
