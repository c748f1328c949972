import Database from "better-sqlite3";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import path from "node:path";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import { pointId, type QdrantStore } from "../lib/store/qdrant-store.ts";
import { openCheckedStore } from "../lib/store/open-store.ts";
import { migrate, schemaVersion, SchemaTooNewError } from "../lib/store/postgres/migrations.ts";
import { openPool } from "../lib/store/postgres/pool.ts";
import { RECORD_MIGRATIONS, RECORDS_SCHEMA } from "../lib/store/postgres/record-migrations.ts";
import type { QdrantClient } from "@qdrant/js-client-rest";
import { cropKey, FolderCropStore, type CropStore } from "../lib/store/crop-store.ts";
import { S3CropStore } from "../lib/store/s3-crop-store.ts";
import { isTransient } from "../lib/runtime/errors.ts";
import { freePort, S3Server, s3UnavailableReason } from "../lib/testing/s3/index.ts";
import type { Sighting, SightingStore } from "../lib/store/sighting-store.ts";
import type { WatchlistStore } from "../lib/store/watchlist-store.ts";
import { alertFromMessage, type AlertStore, type NewAlert } from "../lib/store/alert-store.ts";
import { AlertContract, vectorToBytes } from "../lib/contracts/index.ts";
import type { StateStore } from "../lib/store/state-store.ts";
import { InvalidInputError } from "../lib/store/errors.ts";
import { useQdrant, type LiveQdrant } from "./qdrant-helpers.ts";
import { postgresStoreRecords } from "../lib/store/postgres/store-records.ts";
import { allPages, tempDir, testConfig } from "./helpers.ts";
import { usePostgres } from "./postgres-helpers.ts";
import { cosine, l2normalize } from "../lib/geometry/index.ts";

type Store = WatchlistStore & SightingStore & AlertStore & StateStore;
const q = { faceSize: 80, interOcular: 30, sharpness: 100, yawDeg: 0, pitchDeg: 0, detScore: 0.9 };
const vec = (seed: number, dim = 16) =>
  l2normalize(new Float32Array(dim).map((_, k) => Math.sin(seed * 12.9898 + k * 78.233)));
const near = (v: Float32Array, seed: number) =>
  l2normalize(v.map((x, k) => x + 0.15 * Math.sin(seed + k * 3.1)));
const sighting = (
  id: string,
  cameraId: string,
  startTs: number,
  v: Float32Array,
  personId?: string,
  modelId = "m1",
): Sighting => ({
  id,
  trackId: `t-${id}`,
  cameraId,
  startTs,
  endTs: startTs + 1000,
  faces: 3,
  modelId,
  quality: q,
  match: personId ? { personId, name: personId.toUpperCase(), score: 0.7 } : null,
  vector: v,
  crop: Uint8Array.of(1, 2, 3),
});
const alert = (
  id: string,
  cameraId: string,
  personId: string,
  ts: number,
  more: Partial<NewAlert> = {},
): NewAlert => ({
  id,
  watchlistId: "default",
  personId,
  personName: personId.toUpperCase(),
  cameraId,
  ts,
  score: 0.8,
  threshold: 0.44,
  modelId: "m1",
  faceId: `face-${id}`,
  box: { x: 1, y: 2, width: 30, height: 40 },
  crop: Uint8Array.of(9, ts % 256),
  ...more,
});

/** One behaviour for every store behind the interfaces: the embedded SQLite store and the Qdrant adapter. */
function storeContract(label: string, open: () => Promise<Store>, skip?: string) {
  describe.skipIf(skip !== undefined)(`store contract: ${label}`, () => {
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

    it("keeps each enrolled face's crop, replaced with the face and deleted with it or its person", async () => {
      const store = await open();
      const jpeg = (n: number) => Uint8Array.of(0xff, 0xd8, 0xff, n);
      const bytes = async (faceId: string) => {
        const crop = await store.faceCrop(faceId);
        return crop && Array.from(crop);
      };
      await store.upsertPerson({ id: "ann", name: "Ann", watchlistId: "default" });
      await store.upsertPerson({ id: "bo", name: "Bo", watchlistId: "default" });
      const face = (faceId: string, personId: string, crop?: Uint8Array, modelId = "m1") =>
        store.addFace({ faceId, personId, modelId, vector: vec(faceId.length), source: faceId, crop });
      await face("ann:1.jpg", "ann", jpeg(1));
      // Faces enrolled before crops were kept have none.
      await face("ann:2.jpg", "ann");
      await face("ann:3.jpg", "ann", jpeg(3), "m2");
      await face("bo:1.jpg", "bo", jpeg(9));
      expect(await bytes("ann:1.jpg")).toEqual([0xff, 0xd8, 0xff, 1]);
      expect(await bytes("ann:3.jpg")).toEqual([0xff, 0xd8, 0xff, 3]);
      expect(await store.faceCrop("ann:2.jpg")).toBeUndefined();
      expect(await store.faceCrop("nobody:1.jpg")).toBeUndefined();
      expect((await store.listFaces("ann")).map((f) => [f.faceId, f.hasCrop])).toEqual([
        ["ann:1.jpg", true],
        ["ann:2.jpg", false],
        ["ann:3.jpg", true],
      ]);
      expect(await store.getFace("ann:1.jpg")).toMatchObject({ hasCrop: true });
      // Listings carry whether there is a crop, never its bytes.
      expect(await store.getFace("ann:1.jpg")).not.toHaveProperty("crop");

      // The same photo enrolled again replaces its crop; without one, the old crop goes too.
      await face("ann:1.jpg", "ann", jpeg(7));
      expect(await bytes("ann:1.jpg")).toEqual([0xff, 0xd8, 0xff, 7]);
      await face("ann:1.jpg", "ann");
      expect(await store.faceCrop("ann:1.jpg")).toBeUndefined();
      expect(await store.getFace("ann:1.jpg")).toMatchObject({ hasCrop: false });
      await face("ann:1.jpg", "ann", jpeg(8));

      expect(await store.removeFace("ann:1.jpg")).toBe(true);
      expect(await store.faceCrop("ann:1.jpg")).toBeUndefined();
      expect(await bytes("ann:3.jpg")).toEqual([0xff, 0xd8, 0xff, 3]);
      expect(await store.removePerson("ann")).toBe(true);
      expect(await store.faceCrop("ann:3.jpg")).toBeUndefined();
      // Someone else's crop stays.
      expect(await bytes("bo:1.jpg")).toEqual([0xff, 0xd8, 0xff, 9]);
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

    it("gives one model's enrolled face vectors, and alerts' vectors in one call (vigil train --from-store)", async () => {
      const store = await open();
      expect(await store.listFaceVectors("m1")).toEqual([]);
      for (const id of ["ann", "bo"]) await store.upsertPerson({ id, name: id, watchlistId: "default" });
      const face = (faceId: string, personId: string, modelId: string, v: Float32Array) =>
        store.addFace({ faceId, personId, modelId, vector: v, source: `${faceId}.jpg` });
      await face("bo:1.jpg", "bo", "m1", vec(2));
      await face("ann:1.jpg", "ann", "m1", vec(1));
      await face("ann:x.jpg", "ann", "m2", vec(3, 8));
      // "m.1" and "m_1" share a collection name in Qdrant (names are made safe): still two models.
      await face("ann:dot.jpg", "ann", "m.1", vec(4));
      await face("ann:under.jpg", "ann", "m_1", vec(7));
      const closeTo = (v: Float32Array) => Array.from(v).map((x) => expect.closeTo(x, 6) as unknown);
      const m1 = await store.listFaceVectors("m1");
      expect(m1.map((f) => ({ ...f, vector: Array.from(f.vector) }))).toEqual([
        { faceId: "ann:1.jpg", personId: "ann", vector: closeTo(vec(1)) },
        { faceId: "bo:1.jpg", personId: "bo", vector: closeTo(vec(2)) },
      ]);
      expect((await store.listFaceVectors("m2")).map((f) => [f.faceId, f.vector.length])).toEqual([
        ["ann:x.jpg", 8],
      ]);
      expect((await store.listFaceVectors("m.1")).map((f) => f.faceId)).toEqual(["ann:dot.jpg"]);
      expect((await store.listFaceVectors("m_1")).map((f) => f.faceId)).toEqual(["ann:under.jpg"]);
      await store.removePerson("bo");
      expect((await store.listFaceVectors("m1")).map((f) => f.faceId)).toEqual(["ann:1.jpg"]);

      expect(await store.alertVectors([])).toEqual(new Map());
      await store.addAlerts([
        alert("v1", "door", "ann", 1000, { vector: vec(5) }),
        alert("v2", "door", "ann", 1001),
        alert("v3", "door", "ann", 1002, { vector: vec(6, 8) }),
      ]);
      const vectors = await store.alertVectors(["v1", "v2", "v3", "missing"]);
      expect([...vectors.keys()].sort()).toEqual(["v1", "v3"]);
      expect(Array.from(vectors.get("v1")!)).toEqual(closeTo(vec(5)));
      expect(vectors.get("v3")).toHaveLength(8);
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
      // A replay replaces the sighting, crop included.
      await store.addSightings([{ ...s("a", "door", 1000, near(dee, 1), "dee"), crop: Uint8Array.of(4, 5) }]);
      expect(await store.count()).toBe(3);
      expect(Array.from((await store.crop("a"))!)).toEqual([4, 5]);
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
      expect(await store.crop("nope")).toBeUndefined();
      expect(await store.purgeBefore(6500)).toBe(2);
      expect(await store.count()).toBe(1);
      // Retention takes the crops with their sightings.
      expect(await store.crop("a")).toBeUndefined();
      expect(await store.crop("b")).toBeUndefined();
      expect(Array.from((await store.crop("c"))!)).toEqual([1, 2, 3]);
      expect(await store.purgeBefore(6500)).toBe(0);
    });

    it("keeps a sighting's best face's box and time on every read; one stored without reads back without", async () => {
      const store = await open();
      const dee = vec(12);
      const face = { box: { x: 410.5, y: 96, width: 88, height: 104 }, boxTs: 1600 };
      await store.addSightings([
        { ...sighting("boxed", "door", 1000, near(dee, 1), "dee"), ...face },
        sighting("plain", "door", 2000, near(dee, 2), "dee"),
      ]);
      const reads = async (id: string) => [
        await store.getSighting(id),
        (await store.browse({ limit: 10 })).items.find((s) => s.id === id),
        (await store.search({ modelId: "m1", vector: dee, top: 5 })).find((h) => h.sighting.id === id)!
          .sighting,
        (await store.byPerson("dee")).find((s) => s.id === id),
      ];
      for (const read of await reads("boxed")) expect(read).toMatchObject(face);
      for (const read of await reads("plain")) {
        expect(read).toBeDefined();
        expect(read).not.toHaveProperty("box");
        expect(read).not.toHaveProperty("boxTs");
      }
      // A replay carries the box again: the replaced sighting keeps it.
      await store.addSightings([{ ...sighting("boxed", "door", 1000, near(dee, 1), "dee"), ...face }]);
      expect(await store.getSighting("boxed")).toMatchObject(face);
      // A replay of a message sent before boxes were (a producer not yet upgraded) does not wipe the stored box.
      await store.addSightings([sighting("boxed", "door", 1000, near(dee, 1), "dee")]);
      for (const read of await reads("boxed")) expect(read).toMatchObject(face);
    });

    it("lists what a person has (photos, exclusions), removes one exclusion, and lists watchlists", async () => {
      const store = await open();
      await store.upsertPerson({ id: "ann", name: "Ann", watchlistId: "vip" });
      await store.upsertPerson({ id: "bo", name: "Bo", watchlistId: "default" });
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
        modelId: "m2",
        vector: vec(1, 8),
        source: "2.jpg",
      });
      expect(await store.getPerson("ann")).toEqual({ id: "ann", name: "Ann", watchlistId: "vip", faces: 2 });
      expect(await store.getPerson("bo")).toEqual({ id: "bo", name: "Bo", watchlistId: "default", faces: 0 });
      expect(await store.getPerson("nobody")).toBeUndefined();
      expect(await store.getFace("ann:2.jpg")).toEqual({
        faceId: "ann:2.jpg",
        personId: "ann",
        modelId: "m2",
        source: "2.jpg",
        hasCrop: false,
      });
      expect(await store.getFace("ann:9.jpg")).toBeUndefined();
      expect((await store.listFaces("ann")).map((f) => [f.faceId, f.modelId])).toEqual([
        ["ann:1.jpg", "m1"],
        ["ann:2.jpg", "m2"],
      ]);
      expect(await store.listFaces("bo")).toEqual([]);

      await store.addExclusion({
        id: "ann:x1",
        personId: "ann",
        modelId: "m1",
        vector: vec(3),
        note: "stranger",
      });
      await store.addExclusion({
        id: "ann:x2",
        personId: "ann",
        modelId: "m1",
        vector: vec(4),
        note: "other",
      });
      expect(await store.listExclusions("ann")).toEqual([
        { id: "ann:x1", personId: "ann", modelId: "m1", note: "stranger" },
        { id: "ann:x2", personId: "ann", modelId: "m1", note: "other" },
      ]);
      expect(await store.exclusionScore("ann", "m1", vec(3))).toBeGreaterThan(0.999);
      expect(await store.removeExclusion("ann:x1")).toBe(true);
      expect(await store.removeExclusion("ann:x1")).toBe(false);
      expect((await store.listExclusions("ann")).map((e) => e.id)).toEqual(["ann:x2"]);
      expect(await store.exclusionScore("ann", "m1", vec(3))).toBeLessThan(0.999);

      await store.setWatchlistThreshold("night", 0.6);
      await store.setWatchlistThreshold("cleared", 0.5);
      await store.setWatchlistThreshold("cleared", null);
      expect(await store.listWatchlists()).toEqual([
        { id: "default", threshold: undefined, people: 1 },
        { id: "night", threshold: 0.6, people: 0 },
        { id: "vip", threshold: undefined, people: 1 },
      ]);

      // Nothing stale after an explicit invalidate, and a renamed person matches under the new name.
      store.invalidate();
      await store.upsertPerson({ id: "ann", name: "Ann B", watchlistId: "default" });
      const [renamed] = await store.match("m1", [vec(1)], 1);
      expect(renamed![0]!.person).toEqual({ id: "ann", name: "Ann B", watchlistId: "default" });
      expect(await store.removePerson("ann")).toBe(true);
      expect(await store.listExclusions("ann")).toEqual([]);
      expect(await store.listFaces("ann")).toEqual([]);
    });

    it("browses sightings newest first in stable pages (ties, several models), with filters", async () => {
      const store = await open();
      const dee = vec(30);
      await store.addSightings([
        sighting("s1", "door", 1000, vec(31)),
        sighting("s2", "door", 2000, near(dee, 1), "dee"),
        sighting("s3", "lobby", 2000, vec(33)),
        sighting("s4", "door", 2000, near(dee, 2), "dee"),
        sighting("s5", "lobby", 3000, vec(35)),
        sighting("s6", "door", 4000, vec(36, 8), undefined, "m2"),
        sighting("s7", "lobby", 2000, vec(37, 8), "dee", "m2"),
      ]);
      const order = ["s6", "s5", "s7", "s4", "s3", "s2", "s1"];
      for (const limit of [1, 2, 3, 7, 50]) {
        const ids = (await allPages(limit, (cursor) => store.browse({ limit, cursor }))).map((s) => s.id);
        expect(ids, `pages of ${limit}`).toEqual(order);
      }
      // A sighting added while paging lands on the pages not yet read only if it sorts after the cursor.
      const first = await store.browse({ limit: 3 });
      await store.addSightings([
        sighting("s0", "door", 9000, vec(38)),
        sighting("s2b", "door", 2000, vec(39)),
      ]);
      const rest = await allPages(3, (cursor) =>
        store.browse({ limit: 3, cursor: cursor ?? first.nextCursor! }),
      );
      expect([...first.items, ...rest].map((s) => s.id)).toEqual([
        "s6",
        "s5",
        "s7",
        "s4",
        "s3",
        "s2b",
        "s2",
        "s1",
      ]);

      const burst = Array.from({ length: 9 }, (_, i) => `b${i}`);
      await store.addSightings(
        burst.map((id, i) =>
          i % 2
            ? sighting(id, "hall", 500, vec(50 + i))
            : sighting(id, "hall", 500, vec(50 + i, 8), undefined, "m2"),
        ),
      );
      for (const limit of [2, 4]) {
        const hall = await allPages(limit, (cursor) => store.browse({ limit, cursor, cameras: ["hall"] }));
        expect(hall.map((s) => s.id)).toEqual([...burst].reverse());
      }

      const door = await allPages(2, (cursor) => store.browse({ limit: 2, cursor, cameras: ["door"] }));
      expect(door.map((s) => s.id)).toEqual(["s0", "s6", "s4", "s2b", "s2", "s1"]);
      const deeOnly = await store.browse({ limit: 10, personId: "dee" });
      expect(deeOnly.items.map((s) => s.id)).toEqual(["s7", "s4", "s2"]);
      expect(deeOnly.nextCursor).toBeNull();
      const window = await store.browse({ limit: 10, since: 2000, until: 3000, cameras: ["lobby"] });
      expect(window.items.map((s) => s.id)).toEqual(["s5", "s7", "s3"]);
      expect(window.items[1]).toEqual({
        id: "s7",
        trackId: "t-s7",
        cameraId: "lobby",
        startTs: 2000,
        endTs: 3000,
        faces: 3,
        modelId: "m2",
        quality: q,
        match: { personId: "dee", name: "DEE", score: 0.7 },
      });
      await expect(store.browse({ limit: 5, cursor: "not-a-cursor" })).rejects.toBeInstanceOf(
        InvalidInputError,
      );
      await expect(store.browse({ limit: 0 })).rejects.toBeInstanceOf(InvalidInputError);

      const got = await store.getSighting("s4");
      expect(got).toMatchObject({ id: "s4", cameraId: "door", match: { personId: "dee" } });
      expect(cosine(got!.vector, near(dee, 2))).toBeGreaterThan(0.9999);
      expect(await store.getSighting("nope")).toBeUndefined();

      // Ranked search pages by offset.
      const top4 = await store.search({ modelId: "m1", vector: dee, top: 4 });
      const second = await store.search({ modelId: "m1", vector: dee, top: 2, offset: 2 });
      expect(second.map((h) => h.sighting.id)).toEqual(top4.slice(2).map((h) => h.sighting.id));
    });

    it("stores alerts idempotently, pages them newest first with filters, acknowledges once", async () => {
      const store = await open();
      expect(await store.listAlerts({ limit: 5 })).toEqual({ items: [], nextCursor: null });
      await store.addAlerts([
        alert("a1", "door", "ann", 1000),
        alert("a2", "door", "ann", 2000, { vector: vec(5) }),
        alert("a3", "lobby", "bo", 2000, { watchlistId: "vip" }),
        alert("a4", "door", "bo", 2000),
        alert("a5", "lobby", "ann", 5000),
      ]);
      expect(await store.countAlerts()).toBe(5);
      for (const limit of [1, 2, 4, 10]) {
        const ids = (await allPages(limit, (cursor) => store.listAlerts({ limit, cursor }))).map((a) => a.id);
        expect(ids, `pages of ${limit}`).toEqual(["a5", "a4", "a3", "a2", "a1"]);
      }
      const ids = async (query: Parameters<Store["listAlerts"]>[0]) =>
        (await store.listAlerts(query)).items.map((a) => a.id);
      expect(await ids({ limit: 10, cameras: ["door"] })).toEqual(["a4", "a2", "a1"]);
      expect(await ids({ limit: 10, personId: "ann" })).toEqual(["a5", "a2", "a1"]);
      expect(await ids({ limit: 10, watchlistId: "vip" })).toEqual(["a3"]);
      expect(await ids({ limit: 10, since: 1500, until: 2500 })).toEqual(["a4", "a3", "a2"]);
      expect(await store.countAlerts({ cameras: ["door"], personId: "bo" })).toBe(1);

      const first = await store.acknowledgeAlert("a2", { by: "sam", ts: 123, note: "seen" });
      expect(first).toMatchObject({ id: "a2", acknowledged: { by: "sam", ts: 123, note: "seen" } });
      const again = await store.acknowledgeAlert("a2", { by: "kim", ts: 456, note: null });
      expect(again!.acknowledged).toEqual({ by: "sam", ts: 123, note: "seen" });
      expect(await store.acknowledgeAlert("nope", { by: "sam", ts: 1, note: null })).toBeUndefined();
      expect(await ids({ limit: 10, acknowledged: true })).toEqual(["a2"]);
      expect(await ids({ limit: 10, acknowledged: false, personId: "ann" })).toEqual(["a5", "a1"]);
      expect(await store.countAlerts({ acknowledged: false })).toBe(4);

      // A replay (the vector is not on vigil.alerts) keeps the acknowledgement and the vector stored before.
      await store.addAlerts([alert("a2", "door", "ann", 2000)]);
      expect(await store.countAlerts()).toBe(5);
      const a2 = await store.getAlert("a2");
      expect(a2).toMatchObject({
        id: "a2",
        watchlistId: "default",
        personId: "ann",
        personName: "ANN",
        cameraId: "door",
        ts: 2000,
        score: 0.8,
        threshold: 0.44,
        modelId: "m1",
        faceId: "face-a2",
        box: { x: 1, y: 2, width: 30, height: 40 },
        acknowledged: { by: "sam", ts: 123, note: "seen" },
      });
      expect(cosine(a2!.vector!, vec(5))).toBeGreaterThan(0.9999);
      expect((await store.getAlert("a1"))!.vector).toBeNull();
      expect(await store.getAlert("nope")).toBeUndefined();
      expect(Array.from((await store.alertCrop("a3"))!)).toEqual([9, 2000 % 256]);
      expect(await store.alertCrop("nope")).toBeUndefined();

      // The cool-down's memory: the newest alert strictly before a time.
      expect((await store.lastAlert("ann", "door", 2000))?.id).toBe("a1");
      expect((await store.lastAlert("ann", "door", 2001))?.id).toBe("a2");
      expect(await store.lastAlert("ann", "door", 1000)).toBeUndefined();
      expect((await store.lastAlert("bo", "door", 1e12))?.id).toBe("a4");
      expect(await store.lastAlert("bo", "hall", 1e12)).toBeUndefined();

      expect(await store.purgeAlertsBefore(2000)).toBe(1);
      expect(await store.countAlerts()).toBe(4);
      expect(await store.alertCrop("a1")).toBeUndefined();
      expect(Array.from((await store.alertCrop("a2"))!)).toEqual([9, 2000 % 256]);

      // A long run of equal times (one frame, many faces) split across pages loses and repeats nothing.
      const burst = Array.from({ length: 13 }, (_, i) => `burst-${String(i).padStart(2, "0")}`);
      await store.addAlerts(burst.map((id) => alert(id, "hall", "cy", 7000)));
      for (const limit of [2, 5]) {
        const got = await allPages(limit, (cursor) => store.listAlerts({ limit, cursor, cameras: ["hall"] }));
        expect(got.map((a) => a.id)).toEqual([...burst].reverse());
      }
    });

    it("stores an alert as it arrives on vigil.alerts", async () => {
      const store = await open();
      const message = AlertContract.decode(
        AlertContract.encode({
          alertId: "alert:cam-1:0:1:ann",
          watchlistId: "vip",
          personId: "ann",
          personName: "Ann",
          cameraId: "cam-1",
          ts: 1795822512108,
          score: 0.88,
          threshold: 0.44,
          modelId: "m1",
          faceId: "cam-1:0:1",
          box: { x: 1, y: 2, width: 3, height: 4 },
          matchedFaceId: "ann:2.jpg",
          crop: Uint8Array.of(0xff, 0xd8),
        }),
      );
      await store.addAlerts([alertFromMessage(message)]);
      // Replayed by a producer from before matched faces were recorded: the one stored stays.
      await store.addAlerts([alertFromMessage({ ...message, matchedFaceId: undefined })]);
      expect(await store.getAlert("alert:cam-1:0:1:ann")).toEqual({
        id: "alert:cam-1:0:1:ann",
        watchlistId: "vip",
        personId: "ann",
        personName: "Ann",
        cameraId: "cam-1",
        ts: 1795822512108,
        score: 0.88,
        threshold: 0.44,
        modelId: "m1",
        faceId: "cam-1:0:1",
        box: { x: 1, y: 2, width: 3, height: 4 },
        matchedFaceId: "ann:2.jpg",
        acknowledged: null,
        vector: null,
      });
      expect((await store.listAlerts({ limit: 1 })).items[0]!.matchedFaceId).toBe("ann:2.jpg");
      await store.addAlerts([alert("no-match-recorded", "cam-1", "ann", 1)]);
      expect((await store.getAlert("no-match-recorded"))!.matchedFaceId).toBeNull();
      expect(Array.from((await store.alertCrop("alert:cam-1:0:1:ann"))!)).toEqual([0xff, 0xd8]);
    });

    it("keeps small state blobs by key", async () => {
      const store = await open();
      expect(await store.loadState("match/p0")).toBeUndefined();
      const big = new Uint8Array(100_000).map((_, i) => (i * 7) & 255);
      await store.saveState("match/p0", Uint8Array.of(1, 2, 3));
      await store.saveState("match/p1", big);
      await store.saveState("other", new Uint8Array(0));
      await store.saveState("match/p0", Uint8Array.of(4));
      expect(Array.from((await store.loadState("match/p0"))!)).toEqual([4]);
      expect(Buffer.from((await store.loadState("match/p1"))!).equals(Buffer.from(big))).toBe(true);
      expect((await store.loadState("other"))!.length).toBe(0);
      expect(await store.stateKeys("match/")).toEqual(["match/p0", "match/p1"]);
      expect(await store.stateKeys()).toEqual(["match/p0", "match/p1", "other"]);
      expect(await store.deleteState("match/p0")).toBe(true);
      expect(await store.deleteState("match/p0")).toBe(false);
      expect(await store.loadState("match/p0")).toBeUndefined();
    });
  });
}

storeContract("embedded SQLite", async () => new SqliteStore(path.join(tempDir(), "vigil.db")));

describe("embedded SQLite: a file from before enrolled faces kept crops", () => {
  it("gains the crop column on open; its faces stay without crops, new ones get them", async () => {
    const file = path.join(tempDir(), "old.db");
    // The watchlist tables as they were: no crop column.
    const old = new Database(file);
    old.exec(`
      CREATE TABLE people (id TEXT PRIMARY KEY, name TEXT NOT NULL, watchlist_id TEXT NOT NULL);
      CREATE TABLE faces (
        face_id TEXT PRIMARY KEY, person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        model_id TEXT NOT NULL, vector BLOB NOT NULL, source TEXT NOT NULL);
      INSERT INTO people VALUES ('ann', 'Ann', 'default');`);
    old
      .prepare("INSERT INTO faces VALUES ('ann:old.jpg', 'ann', 'm1', ?, 'old.jpg')")
      .run(vectorToBytes(vec(1)));
    old.close();
    // Two stores opening the old file: the column is added once.
    const store = new SqliteStore(file);
    const other = new SqliteStore(file);
    try {
      expect(await store.listFaces("ann")).toEqual([
        { faceId: "ann:old.jpg", personId: "ann", modelId: "m1", source: "old.jpg", hasCrop: false },
      ]);
      expect(await store.faceCrop("ann:old.jpg")).toBeUndefined();
      const [match] = await store.match("m1", [vec(1)], 1);
      expect(match![0]).toMatchObject({ person: { id: "ann" }, faceId: "ann:old.jpg" });
      await store.addFace({
        faceId: "ann:new.jpg",
        personId: "ann",
        modelId: "m1",
        vector: vec(2),
        source: "new.jpg",
        crop: Uint8Array.of(0xff, 0xd8, 1),
      });
      expect(Array.from((await other.faceCrop("ann:new.jpg"))!)).toEqual([0xff, 0xd8, 1]);
    } finally {
      store.close();
      other.close();
    }
  });
});

describe("embedded SQLite: a file from before sightings kept their best face's box", () => {
  it("gains the columns on open; its sightings have no box, new ones keep theirs", async () => {
    const file = path.join(tempDir(), "old.db");
    const old = new Database(file);
    old.exec(`
      CREATE TABLE sightings (
        id TEXT PRIMARY KEY, track_id TEXT NOT NULL, camera_id TEXT NOT NULL, start_ts INTEGER NOT NULL,
        end_ts INTEGER NOT NULL, faces INTEGER NOT NULL, model_id TEXT NOT NULL, vector BLOB NOT NULL,
        crop BLOB NOT NULL, quality TEXT NOT NULL, person_id TEXT, person_name TEXT, score REAL);`);
    old
      .prepare(
        "INSERT INTO sightings VALUES ('old', 't-old', 'door', 1000, 2000, 3, 'm1', ?, x'ffd8', ?, NULL, NULL, NULL)",
      )
      .run(vectorToBytes(vec(1)), JSON.stringify(q));
    old.close();
    // Two stores opening the old file: the columns are added once.
    const store = new SqliteStore(file);
    const other = new SqliteStore(file);
    try {
      const was = await store.getSighting("old");
      expect(was).toMatchObject({ id: "old", cameraId: "door" });
      expect(was).not.toHaveProperty("box");
      expect(was).not.toHaveProperty("boxTs");
      const face = { box: { x: 1, y: 2, width: 30, height: 40 }, boxTs: 3500 };
      await store.addSightings([{ ...sighting("new", "door", 3000, vec(2)), ...face }]);
      expect(await other.getSighting("new")).toMatchObject(face);
    } finally {
      store.close();
      other.close();
    }
  });
});

describe("embedded SQLite: a file from before alerts named the enrolled face they matched", () => {
  it("gains the column on open; its alerts have none, new ones keep theirs", async () => {
    const file = path.join(tempDir(), "old.db");
    const old = new Database(file);
    old.exec(`
      CREATE TABLE alerts (
        id TEXT PRIMARY KEY, watchlist_id TEXT NOT NULL, person_id TEXT NOT NULL, person_name TEXT NOT NULL,
        camera_id TEXT NOT NULL, ts INTEGER NOT NULL, score REAL NOT NULL, threshold REAL NOT NULL,
        model_id TEXT NOT NULL, face_id TEXT NOT NULL, box TEXT NOT NULL, crop BLOB NOT NULL, vector BLOB,
        ack_by TEXT, ack_ts INTEGER, ack_note TEXT);
      INSERT INTO alerts VALUES ('old', 'default', 'ann', 'ANN', 'door', 1000, 0.8, 0.44, 'm1', 'door:0:0',
        '{"x":1,"y":2,"width":3,"height":4}', x'ffd8', NULL, NULL, NULL, NULL);`);
    old.close();
    // Two stores opening the old file: the column is added once.
    const store = new SqliteStore(file);
    const other = new SqliteStore(file);
    try {
      expect(await store.getAlert("old")).toMatchObject({ id: "old", personId: "ann", matchedFaceId: null });
      await store.addAlerts([alert("new", "door", "ann", 2000, { matchedFaceId: "ann:2.jpg" })]);
      expect((await other.getAlert("new"))!.matchedFaceId).toBe("ann:2.jpg");
    } finally {
      store.close();
      other.close();
    }
  });
});

// Every Qdrant case runs against the real server (one per file), each store behind a proxy that holds its requests
// and the server's replies to the official OpenAPI document: the in-memory fake is kept only to play servers of
// other releases (qdrant-version.test.ts), which a real binary cannot be.
const qdrant = useQdrant("the Qdrant store contract");
const cropStores: CropStore[] = [];
const folderCrops = () => {
  const crops = new FolderCropStore(path.join(tempDir("vigil-crops-"), "crops"));
  cropStores.push(crops);
  return crops;
};

storeContract(
  "Qdrant (real server, requests checked against its OpenAPI document), crops in a folder",
  async () => (await qdrant.open()).store,
  qdrant.skip,
);

// The same suite with alerts and checkpoints in a real PostgreSQL (`store.records.kind: postgres`), Qdrant keeping
// the vectors.
const recordsDb = usePostgres("the Qdrant store with its records in PostgreSQL");
storeContract(
  "Qdrant (real server) with alerts and checkpoints in PostgreSQL",
  async () => {
    const crops = folderCrops();
    const records = postgresStoreRecords(await recordsDb.database(), crops);
    return (await qdrant.open({ crops, store: { records } })).store;
  },
  qdrant.skip ?? recordsDb.skip,
);

describe.skipIf(!!(qdrant.skip ?? recordsDb.skip))("Qdrant with its records in PostgreSQL", () => {
  it("keeps photos' and exclusions' records as rows and only ids beside their vectors; a removal takes all", async () => {
    const crops = folderCrops();
    const url = await recordsDb.database();
    const records = postgresStoreRecords(url, crops);
    const live = await qdrant.open({ crops, store: { records } });
    const { store } = live;
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    try {
      await store.upsertPerson({ id: "ann", name: "Ann", watchlistId: "default" });
      await store.addFace({
        faceId: "ann:1.jpg",
        personId: "ann",
        modelId: "m1",
        vector: vec(1),
        source: "1.jpg",
      });
      await store.addExclusion({
        id: "ann:x1",
        personId: "ann",
        modelId: "m1",
        vector: vec(3),
        note: "her twin",
      });
      const written = await payloads(live);
      expect(written.find((p) => p.collection.startsWith("_watchlist"))!.payload).toEqual({
        faceId: "ann:1.jpg",
        personId: "ann",
        modelId: "m1",
      });
      expect(written.find((p) => p.collection.startsWith("_exclusions"))!.payload).toEqual({
        id: "ann:x1",
        personId: "ann",
        modelId: "m1",
      });
      expect((await db.query("SELECT face_id, source, has_crop FROM photos")).rows).toEqual([
        { face_id: "ann:1.jpg", source: "1.jpg", has_crop: false },
      ]);
      expect((await db.query("SELECT id, note FROM exclusions")).rows).toEqual([
        { id: "ann:x1", note: "her twin" },
      ]);
      expect(await store.getPerson("ann")).toMatchObject({ faces: 1 });
      // A row whose vector never landed (a write cut short) is still removed with the photo.
      await db.query("INSERT INTO photos VALUES ('ann:2.jpg', 'ann', 'm1', '2.jpg', false)");
      expect(await store.removeFace("ann:2.jpg")).toBe(true);
      expect(await store.removeFace("ann:2.jpg")).toBe(false);
      expect(await store.removePerson("ann")).toBe(true);
      expect((await db.query("SELECT count(*)::int AS n FROM photos")).rows[0].n).toBe(0);
      expect((await db.query("SELECT count(*)::int AS n FROM exclusions")).rows[0].n).toBe(0);
      expect(await payloads(live)).toEqual([]);
    } finally {
      await db.end();
    }
  });

  // What `vigil serve match` and `vigil serve api` open at start (openCheckedStore): the records database is
  // migrated then, so a database from a newer release stops the process before its first record, not after.
  const stagesConfig = async (recordsUrl: string) => {
    const { url, prefix } = await qdrant.endpoint();
    return testConfig({
      "store.kind": "qdrant",
      "store.qdrantUrl": url,
      "store.qdrantPrefix": prefix,
      "store.crops.dir": path.join(tempDir("vigil-crops-"), "crops"),
      "store.records": { kind: "postgres", url: recordsUrl },
    });
  };

  it("migrates the records database as a stage starts, before its first record", async () => {
    const url = await recordsDb.database();
    const store = await openCheckedStore(await stagesConfig(url));
    const pool = await openPool(url);
    try {
      expect(await schemaVersion(pool, RECORDS_SCHEMA)).toBe(RECORD_MIGRATIONS.length);
    } finally {
      await pool.end();
      store.close();
    }
  });

  it("refuses to start a stage on a records database migrated by a newer release, and changes nothing", async () => {
    const url = await recordsDb.database();
    const pool = await openPool(url);
    try {
      const newer = [
        ...RECORD_MIGRATIONS,
        { version: RECORD_MIGRATIONS.length + 1, name: "a later release's", sql: "SELECT 1" },
      ];
      await migrate(pool, RECORDS_SCHEMA, newer);
      const err = await openCheckedStore(await stagesConfig(url)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SchemaTooNewError);
      expect((err as Error).message).toMatch(/newer than this Vigil knows/);
      expect(await schemaVersion(pool, RECORDS_SCHEMA)).toBe(newer.length);
      // One that meets it later (a newer replica migrated meanwhile) waits rather than dead-letters its records.
      expect(isTransient(err)).toBe(true);
    } finally {
      await pool.end();
    }
  });

  it("starts a stage while the records database is away, not ready until it answers", async () => {
    const url = `postgres://vigil@127.0.0.1:${await freePort()}/records`;
    const store = await openCheckedStore(await stagesConfig(url));
    try {
      expect(await (store as QdrantStore).recordsHealthy()).toBe(false);
    } finally {
      store.close();
    }
  });
});

// The same suite with crops in a real S3-compatible server (s3s-fs on 127.0.0.1).
const s3Missing = s3UnavailableReason();
if (s3Missing) console.log(`skipping the Qdrant store with S3 crops: ${s3Missing}`);
let s3: S3Server | undefined;
if (!s3Missing) {
  beforeAll(async () => {
    if (!qdrant.skip) s3 = await S3Server.start();
  });
  storeContract(
    "Qdrant (real server) with crops in S3 (s3s-fs)",
    async () => {
      const crops = new S3CropStore({
        bucket: await s3!.createBucket(),
        prefix: "vigil/",
        endpoint: s3!.endpoint,
        forcePathStyle: true,
        credentials: { accessKeyId: s3!.accessKey, secretAccessKey: s3!.secretKey },
      });
      return (await qdrant.open({ crops })).store;
    },
    qdrant.skip,
  );
}

afterAll(async () => {
  for (const c of cropStores) c.close();
  await s3?.destroy();
});

/** Every point's payload in the store's collections, read past the store: what the adapter really wrote. */
async function payloads(live: LiveQdrant) {
  const out: { collection: string; payload: Record<string, unknown> }[] = [];
  for (const { name } of (await live.raw.getCollections()).collections) {
    if (!name.startsWith(`${live.prefix}_`)) continue;
    const { points } = await live.raw.scroll(name, { limit: 1000, with_payload: true, with_vector: false });
    for (const p of points)
      out.push({ collection: name.slice(live.prefix.length), payload: p.payload ?? {} });
  }
  return out;
}

describe.skipIf(!!qdrant.skip)("Qdrant adapter traffic (real server)", () => {
  it("the proxy rejects and records a request the schema does not allow, before the server sees it", async () => {
    const { proxy } = await qdrant.open();
    const res = await fetch(`${proxy.url}/collections/x/points/query`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ limit: "ten" }),
    });
    expect(res.status).toBe(400);
    expect(proxy.violations).toEqual([
      expect.stringMatching(/^POST \/collections\/\{collection_name\}\/points\/query request:.*limit/),
    ]);
    proxy.violations.length = 0;
  });

  it("keeps crops out of Qdrant's payloads: they are in the crop store, under keys from the ids", async () => {
    const crops = folderCrops();
    const live = await qdrant.open({ crops });
    const { store } = live;
    await store.addSightings([sighting("s1", "door", 1000, vec(1))]);
    await store.addAlerts([alert("al1", "door", "ann", 1000)]);
    await store.upsertPerson({ id: "ann", name: "Ann", watchlistId: "default" });
    const face = { personId: "ann", modelId: "m1", vector: vec(1), source: "1.jpg" };
    await store.addFace({ ...face, faceId: "ann:1.jpg", crop: Uint8Array.of(0xff, 0xd8, 5) });
    await store.addFace({ ...face, faceId: "ann:2.jpg", crop: Uint8Array.of(0xff, 0xd8, 6) });
    const stored = await payloads(live);
    expect([...new Set(stored.map((p) => p.collection))].sort()).toEqual([
      "_alerts",
      "_people",
      "_sightings__m1",
      "_watchlist__m1",
    ]);
    for (const { payload } of stored) expect(Object.keys(payload)).not.toContain("crop");
    expect(Array.from((await crops.get(cropKey("sightings", "s1")))!)).toEqual([1, 2, 3]);
    expect(Array.from((await crops.get(cropKey("alerts", "al1")))!)).toEqual([9, 1000 % 256]);
    expect(Array.from((await crops.get(cropKey("faces", "ann:1.jpg")))!)).toEqual([0xff, 0xd8, 5]);
    // Removing the face, then the person, removes the crop store's objects too.
    await store.removeFace("ann:1.jpg");
    expect(await crops.get(cropKey("faces", "ann:1.jpg"))).toBeUndefined();
    expect(await crops.get(cropKey("faces", "ann:2.jpg"))).toBeDefined();
    await store.removePerson("ann");
    expect(await crops.get(cropKey("faces", "ann:2.jpg"))).toBeUndefined();
  });

  it("still serves the crops of points written when crops were kept in the payload", async () => {
    const crops = folderCrops();
    const { store, raw, prefix } = await qdrant.open({ crops });
    await store.addSightings([sighting("s1", "door", 1000, vec(1))]);
    await store.addAlerts([alert("a1", "door", "ann", 1000)]);
    // As the earlier adapter wrote them: the crop base64 in the payload, nothing in the crop store.
    const b64 = Buffer.from([0xff, 0xd8, 0x42]).toString("base64");
    await raw.setPayload(`${prefix}_sightings__m1`, {
      wait: true,
      points: [pointId("s1")],
      payload: { crop: b64 },
    });
    await raw.setPayload(`${prefix}_alerts`, { wait: true, points: [pointId("a1")], payload: { crop: b64 } });
    await crops.delete([cropKey("sightings", "s1"), cropKey("alerts", "a1")]);
    expect(Array.from((await store.crop("s1"))!)).toEqual([0xff, 0xd8, 0x42]);
    expect(Array.from((await store.alertCrop("a1"))!)).toEqual([0xff, 0xd8, 0x42]);
    // …and keeps the base64 out of every listing.
    expect((await store.browse({ limit: 5 })).items[0]).not.toHaveProperty("crop");
    expect(await store.getSighting("s1")).not.toHaveProperty("crop");
    expect(await store.purgeBefore(1e12)).toBe(1);
    expect(await store.crop("s1")).toBeUndefined();
  });

  it("a crop store that is away fails the write as transient, and no point is written without its crop", async () => {
    // Nothing listens on this port: the pipeline must redeliver, not dead-letter.
    const away = new S3CropStore({
      bucket: "crops",
      endpoint: `http://127.0.0.1:${await freePort()}`,
      forcePathStyle: true,
      credentials: { accessKeyId: "k", secretAccessKey: "s" },
      maxAttempts: 1,
    });
    const { store } = await qdrant.open({ crops: away });
    const failed = await store.addSightings([sighting("s1", "door", 1000, vec(1))]).catch((e: unknown) => e);
    expect(isTransient(failed)).toBe(true);
    expect(String(failed)).toMatch(/crop store s3:\/\/crops\/ .* is unreachable/);
    expect(await store.count()).toBe(0);
    const alertFailed = await store.addAlerts([alert("a1", "door", "ann", 1)]).catch((e: unknown) => e);
    expect(isTransient(alertFailed)).toBe(true);
    expect(await store.countAlerts()).toBe(0);
    await expect(store.crop("s1")).rejects.toSatisfy(isTransient);
  });

  it("Qdrant refuses ordered scrolls without a range index, or with an offset (what the store's paging works around)", async () => {
    const { raw, prefix } = await qdrant.open();
    const c = `${prefix}_ordered`;
    await raw.createCollection(c, { vectors: { size: 1, distance: "Cosine" } });
    const scroll = (body: Parameters<QdrantClient["scroll"]>[1]) =>
      raw.scroll(c, body).then(
        () => "ok",
        (e: unknown) =>
          String((e as { data?: unknown }).data ? JSON.stringify((e as { data: unknown }).data) : e),
      );
    expect(await scroll({ order_by: { key: "ts" }, limit: 5 })).toMatch(/No range index for `order_by` key/);
    await raw.createPayloadIndex(c, { field_name: "ts", field_schema: "integer", wait: true });
    expect(await scroll({ order_by: { key: "ts" }, offset: 1, limit: 5 })).toMatch(/offset/i);
    expect(await scroll({ order_by: "ts", limit: 5 })).toBe("ok");
  });

  it("sent only requests the official schema accepts, and the server's answers matched it too", () => {
    const calls = qdrant.calls();
    expect(calls).toContain("POST /collections/{collection_name}/points/query");
    expect(calls).toContain("PUT /collections/{collection_name}/index");
    expect(calls).toContain("POST /collections/{collection_name}/points/scroll");
    expect(calls).toContain("POST /collections/{collection_name}/points/payload");
    expect(qdrant.violations()).toEqual([]);
  });
});
