import { existsSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { nearUnit, randomUnit } from "../lib/testing/vectors.ts";
import { isTransient } from "../lib/runtime/errors.ts";
import { cropKey, FolderCropStore } from "../lib/store/crop-store.ts";
import { NO_RETRY, type QdrantRetry } from "../lib/store/qdrant-nodes.ts";
import { QdrantStore } from "../lib/store/qdrant-store.ts";
import {
  meetsQdrantMinimum,
  parseQdrantVersion,
  QDRANT_MIN_VERSION,
  QdrantVersionError,
} from "../lib/store/qdrant-version.ts";
import type { Sighting } from "../lib/store/sighting-store.ts";
import { FakeQdrant, QDRANT_OPENAPI } from "./fixtures/qdrant-fake.ts";
import { tempDir } from "./helpers.ts";

/**
 * The Qdrant store refuses a server older than QDRANT_MIN_VERSION (one that would ignore upsert's update_mode and
 * update_filter, making the unknown identities' conditional writes unconditional) before writing anything, works
 * with the minimum and newer, and warns once and goes on when the version does not parse. Real HTTP against the
 * fake, which answers `GET /` with the version a test gives it and validates every request against the spec.
 */

const spec = QDRANT_OPENAPI;
const missing = existsSync(spec) ? undefined : `skipping the Qdrant version check: ${spec} not found`;
if (missing) console.log(missing);

const vec = (seed: number, dim = 32) => randomUnit(seed, dim);
const near = (v: Float32Array, seed: number) => nearUnit(v, seed);
const THRESHOLD = 0.8;
const sighting = (id: string, startTs: number, v: Float32Array): Sighting => ({
  id,
  trackId: `t-${id}`,
  cameraId: "door",
  startTs,
  endTs: startTs + 1000,
  faces: 3,
  modelId: "m1",
  quality: { faceSize: 80, interOcular: 40, sharpness: 100, yawDeg: 0, pitchDeg: 0, detScore: 0.9 },
  match: null,
  vector: v,
  crop: Uint8Array.of(1, 2, 3),
});

const fakes: FakeQdrant[] = [];
const stores: QdrantStore[] = [];
afterAll(async () => {
  for (const s of stores) s.close();
  for (const f of fakes) await f.stop();
});

async function open(version?: string, retry?: QdrantRetry) {
  const fake = await new FakeQdrant(spec, version === undefined ? {} : { version }).start();
  fakes.push(fake);
  const crops = new FolderCropStore(path.join(tempDir("vigil-crops-"), "crops"));
  const warnings: string[] = [];
  const store = new QdrantStore(fake.url, "v", undefined, crops, { warn: (m) => warnings.push(m), retry });
  stores.push(store);
  return { fake, crops, store, warnings };
}

/**
 * What the match stage and an operator do: two sightings of one face (the second joins the first's identity by a
 * conditional `update_only` write), a rename, then a third sighting whose join must keep the name.
 */
async function assignAndRename(store: QdrantStore) {
  const face = vec(1);
  const seen = [];
  for (const [i, s] of [sighting("s1", 1000, near(face, 1)), sighting("s2", 2000, near(face, 2))].entries()) {
    await store.addSightings([s]);
    seen.push(await store.unknowns.assignUnknown(s, THRESHOLD));
    expect(seen[i]!.created).toBe(i === 0);
  }
  const id = seen[0]!.id;
  expect(seen[1]!.id).toBe(id);
  await store.unknowns.patchUnknown(id, { name: "courier" });
  const s3 = sighting("s3", 3000, near(face, 3));
  await store.addSightings([s3]);
  expect(await store.unknowns.assignUnknown(s3, THRESHOLD)).toMatchObject({ id, created: false });
  expect(await store.unknowns.getUnknown(id)).toMatchObject({ count: 3, name: "courier" });
}

describe.skipIf(!!missing)("Qdrant server version", () => {
  it("the fake answers GET / as Qdrant does (the version info itself, unwrapped), which the spec accepts", async () => {
    const { fake } = await open();
    // By default the release the spec documents, which has the API the adapters need.
    expect(meetsQdrantMinimum(parseQdrantVersion(fake.version)!)).toBe(true);
    const res = await fetch(`${fake.url}/`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ title: expect.any(String), version: fake.version });
    expect(body).not.toHaveProperty("result");
    expect(fake.violations).toEqual([]);
  });

  it.each(["1.16.3", "1.9.0", "v0.11.7"])(
    "refuses a server at %s, naming both versions, and writes nothing (no point, no crop)",
    async (version) => {
      const { fake, crops, store } = await open(version);
      const attempts: [string, () => Promise<unknown>][] = [
        ["upsertPerson", () => store.upsertPerson({ id: "ann", name: "Ann", watchlistId: "default" })],
        ["addSightings", () => store.addSightings([sighting("s1", 1000, vec(1))])],
        ["saveState", () => store.saveState("k", Uint8Array.of(1))],
        ["patchUnknown", () => store.unknowns.patchUnknown("unknown-x", { name: "x" })],
        ["listUnknowns", () => store.unknowns.listUnknowns({ limit: 5 })],
      ];
      for (const [what, attempt] of attempts) {
        const err = await attempt().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, what).toBeInstanceOf(QdrantVersionError);
        expect(String(err), what).toContain(`version ${version}, older than ${QDRANT_MIN_VERSION}`);
        expect(String(err), what).toMatch(/update_mode and update_filter/);
        // The pipeline waits for an upgrade (redelivers) instead of dead-lettering every record.
        expect(isTransient(err), what).toBe(true);
      }
      // Only the version was asked, again on each call (a refusal is not remembered: an upgrade is seen at once).
      expect(fake.calls.filter((c) => c !== "GET /")).toEqual([]);
      expect(fake.calls.filter((c) => c === "GET /")).toHaveLength(attempts.length);
      expect(fake.payloads()).toEqual([]);
      expect(await crops.get(cropKey("sightings", "s1"))).toBeUndefined();
      expect(fake.violations).toEqual([]);
    },
  );

  it("an upgraded server is used without restarting: a refusal is not remembered", async () => {
    const { fake, store } = await open("1.16.0");
    await expect(store.saveState("k", Uint8Array.of(7))).rejects.toBeInstanceOf(QdrantVersionError);
    fake.version = QDRANT_MIN_VERSION;
    await store.saveState("k", Uint8Array.of(7));
    expect(Array.from((await store.loadState("k"))!)).toEqual([7]);
  });

  it.each([QDRANT_MIN_VERSION, "1.19.0", "v1.17.2", "1.17.0-dev", "2.0.0"])(
    "works with a server at %s: conditional writes go through, no warning, the version asked once",
    async (version) => {
      const { fake, store, warnings } = await open(version);
      await assignAndRename(store);
      expect(warnings).toEqual([]);
      expect(fake.calls.filter((c) => c === "GET /")).toHaveLength(1);
      expect(fake.calls).toContain("PUT /collections/{collection_name}/points");
      expect(fake.violations).toEqual([]);
    },
  );

  it.each(["dev", "1.x-fork", ""])(
    "a version that does not parse (%j): works, with one warning naming it and the minimum",
    async (version) => {
      const { fake, store, warnings } = await open(version);
      await assignAndRename(store);
      await store.upsertPerson({ id: "ann", name: "Ann", watchlistId: "default" });
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(`reports version ${JSON.stringify(version)}, which does not parse`);
      expect(warnings[0]).toContain(QDRANT_MIN_VERSION);
      expect(fake.violations).toEqual([]);
    },
  );

  it("a version question that fails (the server away, a 500) fails that call, and the next call asks again", async () => {
    // Without retries: with them (the default), one 500 is asked again within the call.
    const { fake, store } = await open(undefined, NO_RETRY);
    fake.failNext("GET /");
    const err = await store.upsertPerson({ id: "ann", name: "Ann", watchlistId: "default" }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(QdrantVersionError);
    expect(fake.payloads()).toEqual([]);
    await store.upsertPerson({ id: "ann", name: "Ann", watchlistId: "default" });
    expect(await store.getPerson("ann")).toMatchObject({ name: "Ann" });
    expect(fake.calls.filter((c) => c === "GET /")).toHaveLength(2);
  });
});
