import { afterAll, describe, expect, it } from "vitest";
import path from "node:path";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import { QdrantStore } from "../lib/store/qdrant-store.ts";
import type { SightingStore } from "../lib/store/sighting-store.ts";
import type { WatchlistStore } from "../lib/store/watchlist-store.ts";
import { FakeQdrant } from "./fixtures/qdrant-fake.ts";
import { tempDir } from "./helpers.ts";
import { l2normalize } from "../lib/geometry/index.ts";

type Store = WatchlistStore & SightingStore;
const q = { faceSize: 80, interOcular: 30, sharpness: 100, yawDeg: 0, pitchDeg: 0, detScore: 0.9 };
const vec = (seed: number, dim = 16) =>
  l2normalize(new Float32Array(dim).map((_, k) => Math.sin(seed * 12.9898 + k * 78.233)));
const near = (v: Float32Array, seed: number) =>
  l2normalize(v.map((x, k) => x + 0.15 * Math.sin(seed + k * 3.1)));

/** One behaviour for every store behind the interfaces: the embedded SQLite store and the Qdrant adapter. */
function storeContract(label: string, open: () => Promise<Store>) {
  describe(`store contract: ${label}`, () => {
    it("enrols people, matches faces of the same model only, removes people and photos", async () => {
      const store = await open();
      await store.upsertPerson({ id: "ann", name: "Ann", watchlistId: "default" });
      await store.upsertPerson({ id: "bo", name: "Bo", watchlistId: "vip" });
      await store.addFace({
        faceId: "ann:1.jpg",
        personId: "ann",
        modelId: "m1",
        vector: vec(1),
        source: "1.jpg",
      });
      await store.addFace({
        faceId: "ann:2.jpg",
        personId: "ann",
        modelId: "m1",
        vector: near(vec(1), 5),
        source: "2.jpg",
      });
      await store.addFace({
        faceId: "bo:1.jpg",
        personId: "bo",
        modelId: "m1",
        vector: vec(2),
        source: "b.jpg",
      });
      await store.addFace({
        faceId: "bo:x.jpg",
        personId: "bo",
        modelId: "m2",
        vector: vec(1, 8),
        source: "x.jpg",
      });
      const [forAnn, forBo] = await store.match("m1", [near(vec(1), 9), near(vec(2), 9)], 2);
      expect(forAnn![0]).toMatchObject({ person: { id: "ann", name: "Ann" } });
      expect(forAnn!.map((m) => m.person.id)).toEqual(["ann", "bo"]); // one entry per person
      expect(forBo![0]!.person.id).toBe("bo");
      expect((await store.listPeople()).map((p) => [p.id, p.faces])).toEqual([
        ["ann", 2],
        ["bo", 2],
      ]);
      expect(await store.removeFace("ann:2.jpg")).toBe(true);
      expect(await store.removePerson("bo")).toBe(true);
      expect(await store.removePerson("nobody")).toBe(false);
      expect((await store.listPeople()).map((p) => [p.id, p.faces])).toEqual([["ann", 1]]);
      const [after] = await store.match("m1", [vec(2)], 3);
      expect(after!.map((m) => m.person.id)).toEqual(["ann"]);
    });

    it("keeps exclusions and per-watchlist thresholds", async () => {
      const store = await open();
      await store.upsertPerson({ id: "cy", name: "Cy", watchlistId: "w" });
      expect(await store.exclusionScore("cy", "m1", vec(3))).toBe(-1);
      await store.addExclusion({
        id: "cy:not-1",
        personId: "cy",
        modelId: "m1",
        vector: vec(3),
        note: "stranger",
      });
      const close = await store.exclusionScore("cy", "m1", near(vec(3), 2));
      expect(close).toBeGreaterThan(0.7);
      expect(await store.exclusionScore("cy", "m1", vec(40))).toBeLessThan(close);
      expect(await store.exclusionScore("someone-else", "m1", vec(3))).toBe(-1);
      expect(await store.watchlistThreshold("w")).toBeUndefined();
      await store.setWatchlistThreshold("w", 0.61);
      expect(await store.watchlistThreshold("w")).toBeCloseTo(0.61, 6);
    });

    it("stores sightings idempotently and searches them with camera and time filters", async () => {
      const store = await open();
      const s = (id: string, cameraId: string, startTs: number, v: Float32Array, personId?: string) => ({
        id,
        trackId: `t-${id}`,
        cameraId,
        startTs,
        endTs: startTs + 1000,
        faces: 3,
        modelId: "m1",
        quality: q,
        match: personId ? { personId, name: personId.toUpperCase(), score: 0.7 } : null,
        vector: v,
        crop: Uint8Array.of(1, 2, 3),
      });
      const dee = vec(10);
      await store.addSightings([
        s("a", "door", 1000, near(dee, 1), "dee"),
        s("b", "lobby", 5000, near(dee, 2), "dee"),
        s("c", "door", 9000, vec(11)),
      ]);
      await store.addSightings([s("a", "door", 1000, near(dee, 1), "dee")]); // replay
      expect(await store.count()).toBe(3);
      const all = await store.search({ modelId: "m1", vector: dee, top: 2 });
      expect(all.map((h) => h.sighting.id).sort()).toEqual(["a", "b"]);
      const lobby = await store.search({ modelId: "m1", vector: dee, cameras: ["lobby"], top: 5 });
      expect(lobby.map((h) => h.sighting.id)).toEqual(["b"]);
      const early = await store.search({ modelId: "m1", vector: dee, since: 0, until: 2000, top: 5 });
      expect(early.map((h) => h.sighting.id)).toEqual(["a"]);
      expect(await store.search({ modelId: "other", vector: dee, top: 5 })).toEqual([]);
      expect((await store.byPerson("dee")).map((r) => [r.id, r.cameraId])).toEqual([
        ["a", "door"],
        ["b", "lobby"],
      ]);
      expect(Array.from((await store.crop("b"))!)).toEqual([1, 2, 3]);
      expect(await store.purgeBefore(6500)).toBe(2);
      expect(await store.count()).toBe(1);
    });
  });
}

storeContract("embedded SQLite", async () => new SqliteStore(path.join(tempDir(), "vigil.db")));

const spec = path.resolve("../shared/qdrant/openapi-v1.19.json");
const fakes: FakeQdrant[] = [];
let collectionPrefix = 0;
storeContract("Qdrant adapter against a fake that validates Qdrant's OpenAPI schema", async () => {
  const fake = await new FakeQdrant(process.env.VIGIL_QDRANT_OPENAPI ?? spec).start();
  fakes.push(fake);
  return new QdrantStore(fake.url, `t${collectionPrefix++}`);
});

afterAll(async () => {
  for (const f of fakes) await f.stop();
});

describe("Qdrant adapter traffic", () => {
  it("the fake rejects and records a request the schema does not allow", async () => {
    const fake = await new FakeQdrant(process.env.VIGIL_QDRANT_OPENAPI ?? spec).start();
    const res = await fetch(`${fake.url}/collections/x/points/query`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ limit: "ten" }),
    });
    expect(res.status).toBe(400);
    expect(fake.violations).toEqual([
      expect.stringMatching(/^POST \/collections\/\{collection_name\}\/points\/query request:.*limit/),
    ]);
    await fake.stop();
  });

  it("sent only requests the official schema accepts, and the fake's answers matched it too", () => {
    expect(fakes.length).toBeGreaterThan(0);
    const calls = new Set(fakes.flatMap((f) => f.calls));
    expect(calls).toContain("POST /collections/{collection_name}/points/query");
    expect(calls).toContain("PUT /collections/{collection_name}/index");
    expect(fakes.flatMap((f) => f.violations)).toEqual([]);
  });
});

const live = process.env.QDRANT_URL;
if (!live) console.log("skipping the live Qdrant suite: QDRANT_URL is not set");
if (live)
  storeContract(
    `Qdrant at ${live}`,
    async () =>
      new QdrantStore(live, `vigil_test_${Date.now()}_${collectionPrefix++}`, process.env.QDRANT_API_KEY),
  );
