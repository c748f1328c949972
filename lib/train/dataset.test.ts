import { existsSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Config } from "../config/index.ts";
import { l2normalize } from "../geometry/index.ts";
import { openStore } from "../store/open-store.ts";
import { MAX_PAGE } from "../store/paging.ts";
import { alertExclusionId } from "../store/watchlist-store.ts";
import { useQdrant } from "../../test/qdrant-helpers.ts";
import { tempDir, testConfig } from "../../test/helpers.ts";
import { configuredStoreData } from "./dataset.ts";

// Unit vectors: Qdrant keeps a cosine collection's vectors normalised, so both stores give back what was put in.
const vector = (seed: number, dim = 4) =>
  l2normalize(Float32Array.from({ length: dim }, (_, i) => Math.sin(seed + i)));

const alert = (id: string, personId: string, seed: number, more: Record<string, unknown> = {}) => ({
  id,
  watchlistId: "default",
  personId,
  personName: personId,
  cameraId: "cam-1",
  ts: 1_000 + seed,
  score: 0.8,
  threshold: 0.5,
  modelId: "reid-0095",
  faceId: `cam-1:0:${seed}`,
  box: { x: 0, y: 0, width: 10, height: 10 },
  crop: new Uint8Array([0xff, 0xd8]),
  vector: vector(10 + seed),
  ...more,
});

const qdrant = useQdrant("training from the Qdrant store");

/** The same expectations on each store `vigil train --from-store` reads through the store interfaces. */
const stores: [string, () => Promise<Config>, skip?: string][] = [
  ["embedded SQLite", async () => testConfig()],
  [
    "Qdrant (real server, requests checked against its OpenAPI document)",
    async () => {
      const { url, apiKey, prefix } = await qdrant.endpoint();
      return testConfig({
        "store.kind": "qdrant",
        "store.qdrantUrl": url,
        ...(apiKey ? { "store.qdrantApiKey": apiKey } : {}),
        "store.qdrantPrefix": prefix,
        "store.crops.dir": path.join(tempDir("vigil-train-crops-"), "crops"),
      });
    },
    qdrant.skip,
  ],
];

afterAll(() => {
  // Every request the Qdrant adapter sent, and every answer, was one the official schema accepts.
  expect(qdrant.violations()).toEqual([]);
});

for (const [label, configure, skip] of stores)
  describe.skipIf(skip !== undefined)(`training data from the store (--from-store): ${label}`, () => {
    it("takes enrolled photos and acknowledged alerts of the base model, not excluded or unacknowledged ones", async () => {
      const config = await configure();
      const store = openStore(config);
      try {
        for (const id of ["ann", "bob"]) await store.upsertPerson({ id, name: id, watchlistId: "default" });
        const face = (faceId: string, personId: string, modelId: string, v: Float32Array) =>
          store.addFace({ faceId, personId, modelId, vector: v, source: `${faceId}.jpg` });
        await face("ann:1", "ann", "reid-0095", vector(1));
        await face("ann:2", "ann", "reid-0095", vector(2));
        await face("bob:1", "bob", "reid-0095", vector(3));
        await face("bob:old", "bob", "mobilefacenet-faceplugin", vector(4, 8));
        await store.addAlerts([
          alert("a1", "bob", 1),
          alert("a2", "bob", 2),
          alert("a3", "ann", 3),
          alert("a4", "ann", 4, { vector: null }),
          alert("a5", "ann", 5, { modelId: "mobilefacenet-faceplugin", vector: vector(15, 8) }),
        ]);
        for (const id of ["a1", "a2", "a4", "a5"])
          await store.acknowledgeAlert(id, { by: "op", ts: 2_000, note: null });
        // a2 was then said not to be Bob (as `vigil exclude --alert a2` names it): never a positive of his.
        await store.addExclusion({
          id: alertExclusionId("bob", "a2"),
          personId: "bob",
          modelId: "reid-0095",
          vector: vector(12),
          note: "alert a2",
        });
        // An exclusion from a photo says nothing about any alert.
        await store.addExclusion({
          id: "bob:exclusion:photo:abc",
          personId: "bob",
          modelId: "reid-0095",
          vector: vector(30),
          note: "stranger.jpg",
        });
      } finally {
        store.close();
      }

      const data = await configuredStoreData(config, "reid-0095");
      expect(data.images).toBe(4); // ann:1, ann:2, bob:1 and the acknowledged, not excluded alert a1
      expect(data.identities).toBe(2);
      expect(data.samples.map((s) => s.identity).sort()).toEqual(["ann", "ann", "bob", "bob"]);
      const fromAlert = data.samples.find((s) => Math.abs(s.vector[0]! - vector(11)[0]!) < 1e-6);
      expect(fromAlert?.identity).toBe("bob");
      expect(Array.from(fromAlert!.vector)).toEqual(
        Array.from(vector(11)).map((x) => expect.closeTo(x, 6) as unknown),
      );
      expect([...data.skipped].sort()).toEqual([
        "alert a2: said not to be bob (an exclusion)",
        "alert a4: stored without its face's vector",
        "alert a5: a vector of mobilefacenet-faceplugin, not of the base model reid-0095",
        "photo bob:old: a vector of mobilefacenet-faceplugin, not of the base model reid-0095",
      ]);
      expect(data.source).toMatch(/: 4 enrolled photo\(s\), 4 acknowledged alert\(s\)$/);
    });

    it(`pages through more acknowledged alerts than one page holds (${MAX_PAGE})`, async () => {
      const config = await configure();
      const store = openStore(config);
      const n = MAX_PAGE + 3;
      try {
        await store.upsertPerson({ id: "cy", name: "cy", watchlistId: "default" });
        const alerts = Array.from({ length: n }, (_, i) => alert(`b${i}`, "cy", i));
        await store.addAlerts(alerts);
        for (const a of alerts) await store.acknowledgeAlert(a.id, { by: "op", ts: 5_000, note: null });
      } finally {
        store.close();
      }
      const data = await configuredStoreData(config, "reid-0095");
      expect(data.images).toBe(n);
      expect(data.skipped).toEqual([]);
      expect(data.source).toMatch(`: 0 enrolled photo(s), ${n} acknowledged alert(s)`);
    }, 60_000);

    it("an empty store is an error that says what to do", async () => {
      const config = await configure();
      openStore(config).close();
      await expect(configuredStoreData(config, "reid-0095")).rejects.toThrow(
        /has no enrolled photos or acknowledged alerts: enrol people first/,
      );
    });
  });

describe("training data from the embedded store", () => {
  it("says where the store should be when there is none, and does not create it", async () => {
    const config = testConfig({ "store.path": "/nonexistent/vigil.db" });
    await expect(configuredStoreData(config, "reid-0095")).rejects.toThrow(
      /no store at \/nonexistent\/vigil\.db/,
    );
    expect(existsSync("/nonexistent/vigil.db")).toBe(false);
  });
});
