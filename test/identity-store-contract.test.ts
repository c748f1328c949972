import { QdrantClient } from "@qdrant/js-client-rest";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cosine, l2normalize } from "../lib/geometry/index.ts";
import { centroidOf } from "../lib/identities/clusterer.ts";
import { BEST_KEPT, identityOf, mergeIdentities, unknownIdFor } from "../lib/identities/identity.ts";
import { FolderCropStore } from "../lib/store/crop-store.ts";
import { InvalidInputError } from "../lib/store/errors.ts";
import type { IdentityStore } from "../lib/store/identity-store.ts";
import type { Page } from "../lib/store/paging.ts";
import { pointId, QdrantStore } from "../lib/store/qdrant-store.ts";
import type { Sighting, SightingStore } from "../lib/store/sighting-store.ts";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import { seededRandom } from "../lib/eval/cluster.ts";
import { FakeQdrant } from "./fixtures/qdrant-fake.ts";
import { tempDir } from "./helpers.ts";

type Store = SightingStore & { unknowns: IdentityStore };

/** A random unit vector per seed: in 64 dimensions two of them are nearly orthogonal, like two strangers. */
const vec = (seed: number, dim = 64) => {
  const random = seededRandom(seed);
  return l2normalize(new Float32Array(dim).map(() => random() - 0.5));
};
/** A vector close to `v` (cosine ≈ 0.95): the same face seen again. */
const near = (v: Float32Array, seed: number) => {
  const noise = vec(seed + 10_000, v.length);
  return l2normalize(v.map((x, k) => x + 0.3 * noise[k]!));
};
const THRESHOLD = 0.8;

const sighting = (
  id: string,
  cameraId: string,
  startTs: number,
  v: Float32Array,
  sharpness = 100,
  modelId = "m1",
): Sighting => ({
  id,
  trackId: `t-${id}`,
  cameraId,
  startTs,
  endTs: startTs + 1000,
  faces: 3,
  modelId,
  quality: { faceSize: 80, interOcular: 40, sharpness, yawDeg: 0, pitchDeg: 0, detScore: 0.9 },
  match: null,
  vector: v,
  crop: Uint8Array.of(1, 2, 3),
});

async function allPages<T>(limit: number, page: (cursor?: string) => Promise<Page<T>>): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 100; i++) {
    const p = await page(cursor);
    out.push(...p.items);
    if (p.nextCursor === null) return out;
    expect(p.items).toHaveLength(limit);
    cursor = p.nextCursor;
  }
  throw new Error("paging did not end");
}

/** Stores a sighting, then assigns it, as the match stage does. */
async function see(store: Store, s: Sighting) {
  await store.addSightings([s]);
  return store.unknowns.assignUnknown(s, THRESHOLD);
}

function identityContract(label: string, open: () => Promise<Store>) {
  describe(`unknown identities: ${label}`, () => {
    it("assigns sightings online: near joins the nearest centroid, far starts a new identity, models never mix", async () => {
      const store = await open();
      const u = store.unknowns;
      const ann = vec(1);
      const a1 = await see(store, sighting("s1", "door", 1000, near(ann, 1), 40));
      expect(a1).toEqual({ id: unknownIdFor("s1"), created: true, similarity: 1, replayed: false });
      const a2 = await see(store, sighting("s2", "lobby", 5000, near(ann, 2), 200));
      expect(a2).toMatchObject({ id: a1.id, created: false, replayed: false });
      expect(a2.similarity).toBeGreaterThan(THRESHOLD);
      const other = await see(store, sighting("s3", "door", 3000, vec(2)));
      expect(other).toMatchObject({ id: unknownIdFor("s3"), created: true });
      // The same face from another model is another identity: vectors of different models are never compared.
      const m2 = await see(store, sighting("s4", "door", 4000, near(ann, 3), 100, "m2"));
      expect(m2).toMatchObject({ created: true });
      expect(m2.id).not.toBe(a1.id);

      const got = (await u.getUnknown(a1.id))!;
      expect(got).toMatchObject({
        id: a1.id,
        name: null,
        modelId: "m1",
        firstSeen: 1000,
        lastSeen: 6000,
        count: 2,
        cameras: ["door", "lobby"],
        promotedTo: null,
      });
      // Best photo first: the sharper sighting.
      expect(got.best.map((b) => b.id)).toEqual(["s2", "s1"]);
      // The centroid is the normalised sum of its members.
      expect(
        cosine(centroidOf(got.sum), l2normalize(near(ann, 1).map((x, i) => x + near(ann, 2)[i]!))),
      ).toBeCloseTo(1, 5);
      expect(await u.getUnknown("unknown-000000000000")).toBeUndefined();

      // Sightings carry their identity everywhere they are read.
      expect((await store.getSighting("s2"))!.unknownId).toBe(a1.id);
      const hits = await store.search({ modelId: "m1", vector: ann, top: 1 });
      expect(hits[0]!.sighting.unknownId).toBe(a1.id);
      const theirs = await store.browse({ limit: 10, unknownId: a1.id });
      expect(theirs.items.map((s) => s.id)).toEqual(["s2", "s1"]);
      await expect(u.assignUnknown(sighting("never-stored", "door", 1, vec(9)), THRESHOLD)).rejects.toThrow(
        /not stored/,
      );
    });

    it("assigns each sighting once: a replayed batch (stored and assigned again) counts nothing twice", async () => {
      const store = await open();
      const s1 = sighting("r1", "door", 1000, vec(5));
      const s2 = sighting("r2", "yard", 2000, near(vec(5), 1));
      const first = await see(store, s1);
      await see(store, s2);
      // The replay after a crash: the same sightings stored again, then assigned again.
      await store.addSightings([s1, s2]);
      expect((await store.getSighting("r1"))!.unknownId).toBe(first.id);
      expect(await store.unknowns.assignUnknown(s1, THRESHOLD)).toMatchObject({
        id: first.id,
        replayed: true,
      });
      expect(await store.unknowns.assignUnknown(s2, THRESHOLD)).toMatchObject({
        id: first.id,
        replayed: true,
      });
      expect((await store.unknowns.getUnknown(first.id))!.count).toBe(2);
    });

    it("lists identities by last seen, newest first, in stable pages, filtered by camera and time", async () => {
      const store = await open();
      // Ten strangers far apart; i2 and i3 last seen at the same instant.
      const ends = [1000, 2000, 3000, 3000, 5000, 6000, 7000, 8000, 9000, 10000];
      const ids: string[] = [];
      for (const [i, end] of ends.entries())
        ids.push(
          (await see(store, sighting(`l${i}`, i % 2 ? "door" : "yard", end - 1000, vec(100 + i * 7)))).id,
        );
      const order = [...ends.keys()]
        .sort((a, b) => ends[b]! - ends[a]! || (ids[a]! < ids[b]! ? 1 : -1))
        .map((i) => ids[i]);
      for (const limit of [1, 3, 4, 10, 50]) {
        const got = await allPages(limit, (cursor) => store.unknowns.listUnknowns({ limit, cursor }));
        expect(
          got.map((g) => g.id),
          `pages of ${limit}`,
        ).toEqual(order);
      }
      const door = await allPages(2, (cursor) =>
        store.unknowns.listUnknowns({ limit: 2, cursor, cameras: ["door"] }),
      );
      expect(door.map((g) => g.id)).toEqual(order.filter((id) => ids.indexOf(id!) % 2 === 1));
      const window = await store.unknowns.listUnknowns({ limit: 50, seenSince: 5000, seenUntil: 6000 });
      // [firstSeen, lastSeen] reaching into [5000, 6000]: l4 (4000–5000), l5 (5000–6000), l6 (6000–7000).
      expect(window.items.map((g) => g.id)).toEqual([ids[6], ids[5], ids[4]]);
      expect(window.items[0]).toEqual({
        id: ids[6],
        name: null,
        modelId: "m1",
        firstSeen: 6000,
        lastSeen: 7000,
        count: 1,
        cameras: ["yard"],
        bestSightings: ["l6"],
        promotedTo: null,
      });
      await expect(store.unknowns.listUnknowns({ limit: 5, cursor: "nope" })).rejects.toBeInstanceOf(
        InvalidInputError,
      );
      await expect(store.unknowns.listUnknowns({ limit: 0 })).rejects.toBeInstanceOf(InvalidInputError);
    });

    it("renames, merges, splits and deletes, relabelling the sightings with each change", async () => {
      const store = await open();
      const u = store.unknowns;
      const a = await see(store, sighting("m1", "door", 1000, vec(20)));
      await see(store, sighting("m2", "door", 2000, near(vec(20), 1)));
      const b = await see(store, sighting("m3", "lobby", 5000, vec(21)));
      const stateA = (await u.getUnknown(a.id))!;
      await u.putUnknown({ ...stateA, name: "Courier" });
      expect((await u.getUnknown(a.id))!.name).toBe("Courier");

      const merged = mergeIdentities((await u.getUnknown(a.id))!, (await u.getUnknown(b.id))!);
      await u.commitMerge(merged, b.id);
      expect(await u.getUnknown(b.id)).toBeUndefined();
      expect(await u.getUnknown(a.id)).toMatchObject({
        name: "Courier",
        count: 3,
        cameras: ["door", "lobby"],
        firstSeen: 1000,
        lastSeen: 6000,
      });
      expect((await store.getSighting("m3"))!.unknownId).toBe(a.id);
      expect((await store.browse({ limit: 10, unknownId: a.id })).items.map((s) => s.id)).toEqual([
        "m3",
        "m2",
        "m1",
      ]);

      const moved = (await store.getSighting("m3"))!;
      const created = identityOf("unknown-aaaaaaaaaaaa", [moved]);
      const source = { ...(await u.getUnknown(a.id))!, count: 2 };
      await u.commitSplit(source, created, ["m3"]);
      expect((await store.getSighting("m3"))!.unknownId).toBe("unknown-aaaaaaaaaaaa");
      expect(await u.getUnknown("unknown-aaaaaaaaaaaa")).toMatchObject({ count: 1, cameras: ["lobby"] });
      expect((await u.getUnknown(a.id))!.count).toBe(2);

      expect(await u.deleteUnknown(a.id)).toBe(true);
      expect(await u.deleteUnknown(a.id)).toBe(false);
      expect(await u.getUnknown(a.id)).toBeUndefined();
      // The sightings stay, unlabelled.
      expect((await store.getSighting("m1"))!.unknownId).toBeUndefined();
      expect(await store.count()).toBe(3);
      // A deleted identity attracts nothing: the same face starts a new one.
      const again = await see(store, sighting("m4", "door", 9000, near(vec(20), 2)));
      expect(again).toMatchObject({ created: true, id: unknownIdFor("m4") });
    });

    it("keeps only the best few photos, and purges identities not seen since a time", async () => {
      const store = await open();
      const face = vec(40);
      for (let i = 0; i < BEST_KEPT + 3; i++)
        await see(store, sighting(`p${i}`, "door", 1000 + i, near(face, i), 20 + i * 10));
      const one = (await store.unknowns.listUnknowns({ limit: 5 })).items[0]!;
      expect(one.count).toBe(BEST_KEPT + 3);
      expect(one.bestSightings).toEqual(["p7", "p6", "p5", "p4", "p3"]);
      // Last seen at 1010; the others at 2000 and later.
      const old = await see(store, sighting("q1", "yard", 10, vec(41)));
      expect(await store.unknowns.purgeUnknownsBefore(1500)).toBe(1);
      expect(await store.unknowns.getUnknown(old.id)).toBeUndefined();
      expect((await store.getSighting("q1"))!.unknownId).toBeUndefined();
      expect(await store.unknowns.getUnknown(one.id)).toBeDefined();
      expect(await store.unknowns.purgeUnknownsBefore(1500)).toBe(0);
    });
  });
}

identityContract("embedded SQLite", async () => new SqliteStore(path.join(tempDir(), "vigil.db")));

const spec = process.env.VIGIL_QDRANT_OPENAPI ?? path.resolve("../shared/qdrant/openapi-v1.19.json");
const fakes: FakeQdrant[] = [];
let prefix = 0;
const openQdrant = async () => {
  const fake = await new FakeQdrant(spec).start();
  fakes.push(fake);
  return {
    fake,
    store: new QdrantStore(
      fake.url,
      `u${prefix++}`,
      undefined,
      new FolderCropStore(path.join(tempDir("vigil-crops-"), "crops")),
    ),
  };
};
identityContract(
  "Qdrant adapter against the OpenAPI-validating fake",
  async () => (await openQdrant()).store,
);

afterAll(async () => {
  for (const f of fakes) await f.stop();
});

describe("unknown identities: Qdrant specifics", () => {
  it("a crash between writing the identity and labelling its sighting is completed by the replay, not counted twice", async () => {
    const { fake, store } = await openQdrant();
    const s1 = sighting("c1", "door", 1000, vec(60));
    const s2 = sighting("c2", "door", 2000, near(vec(60), 1));
    const a = await see(store, s1);
    await see(store, s2);
    // As if the process died after the identity's upsert, before the sighting's label.
    const raw = new QdrantClient({ url: fake.url, checkCompatibility: false });
    await raw.setPayload(`${store.name("sightings", "m1")}`, {
      wait: true,
      points: [pointId("c2")],
      payload: { unknownId: null },
    });
    expect((await store.getSighting("c2"))!.unknownId).toBeUndefined();
    await store.addSightings([s2]);
    expect(await store.unknowns.assignUnknown(s2, THRESHOLD)).toMatchObject({ id: a.id, replayed: true });
    expect((await store.getSighting("c2"))!.unknownId).toBe(a.id);
    expect((await store.unknowns.getUnknown(a.id))!.count).toBe(2);
  });

  it("finds the nearest centroid by a vector query, and sent only requests Qdrant's schema accepts", () => {
    const calls = new Set(fakes.flatMap((f) => f.calls));
    expect(calls).toContain("POST /collections/{collection_name}/points/query");
    expect(calls).toContain("POST /collections/{collection_name}/points/payload");
    expect(fakes.flatMap((f) => f.violations)).toEqual([]);
  });
});
