import { beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import path from "node:path";
import { l2normalize } from "../lib/geometry/index.ts";
import { HistoryService } from "../lib/history/service.ts";
import { cropLargestFace, samplePhotos } from "../lib/media/sample-media.ts";
import type { NewAlert } from "../lib/store/alert-store.ts";
import { InvalidInputError, NotFoundError } from "../lib/store/errors.ts";
import type { Sighting } from "../lib/store/sighting-store.ts";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import { thresholdFor } from "../lib/vision/models/calibration.ts";
import { embedSingleFace, photoEmbedder } from "../lib/watchlist/photo.ts";
import { sharedVision, tempDir, testConfig } from "./helpers.ts";

const q = { faceSize: 80, interOcular: 30, sharpness: 100, yawDeg: 0, pitchDeg: 0, detScore: 0.9 };
const now = 1_800_000_000_000;

describe("HistoryService on the embedded store, with the real models", () => {
  let store: SqliteStore;
  let history: HistoryService;
  let ann: string;
  let bo: string;
  let group: string;
  let modelId: string;
  let threshold: number;

  beforeAll(async () => {
    const vision = await sharedVision();
    const config = testConfig();
    const dir = tempDir();
    const photos = await samplePhotos(path.resolve(".vigil/cache"));
    ann = path.join(dir, "ann.jpg");
    const annWide = path.join(dir, "ann-wide.jpg");
    bo = path.join(dir, "bo.jpg");
    group = photos[2]!;
    await cropLargestFace(vision, photos[0]!, ann, 0.6);
    await cropLargestFace(vision, photos[0]!, annWide, 0.9);
    await cropLargestFace(vision, photos[3]!, bo, 0.6);
    const vectorOf = async (file: string) => {
      const r = await embedSingleFace(vision, file, file);
      if (!r.ok) throw new Error(r.reason);
      return r.vector;
    };
    modelId = vision.embedder.modelId;
    threshold = thresholdFor(modelId, config);
    const annVector = await vectorOf(annWide);
    const boVector = await vectorOf(bo);
    // Strangers: random directions, far from everyone (cosine ≈ 0 in 256 dimensions).
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
    const stranger = () => l2normalize(new Float32Array(annVector.length).map(random));
    const s = (
      id: string,
      cameraId: string,
      startTs: number,
      vector: Float32Array,
      match: Sighting["match"] = null,
    ): Sighting => ({
      id,
      trackId: `t-${id}`,
      cameraId,
      startTs,
      endTs: startTs + 4000,
      faces: 5,
      modelId,
      quality: q,
      match,
      vector,
      crop: Uint8Array.of(0xff, 0xd8, id.length),
    });
    const annMatch = { personId: "ann", name: "Ann", score: 0.8 };
    store = new SqliteStore(path.join(dir, "vigil.db"));
    await store.addSightings([
      s("ann-door-1", "door", now - 60_000, annVector, annMatch),
      s("ann-door-2", "door", now - 40_000, annVector, annMatch),
      s("ann-lobby", "lobby", now - 20_000, annVector, annMatch),
      s("bo-door", "door", now - 30_000, boVector),
      ...Array.from({ length: 6 }, (_, i) =>
        s(`x${i}`, i % 2 ? "door" : "lobby", now - 50_000 + i * 1000, stranger()),
      ),
    ]);
    const alert = (id: string, cameraId: string, personId: string, ts: number): NewAlert => ({
      id,
      watchlistId: personId === "ann" ? "vip" : "default",
      personId,
      personName: personId,
      cameraId,
      ts,
      score: 0.7,
      threshold,
      modelId,
      faceId: `${id}:face`,
      box: { x: 10, y: 10, width: 80, height: 80 },
      crop: Uint8Array.of(0xff, 0xd8, ts % 256),
      vector: annVector,
    });
    await store.addAlerts([
      alert("alert-1", "door", "ann", now - 60_000),
      alert("alert-2", "lobby", "ann", now - 20_000),
      alert("alert-3", "door", "bo", now - 30_000),
    ]);
    history = new HistoryService({
      store,
      photos: photoEmbedder(vision),
      thresholdFor: (m) => thresholdFor(m, config),
      clock: () => now,
    });
  });

  it("searches sightings by photo, best first, in pages, marking which are the same person", async () => {
    const first = await history.searchByPhoto(ann, { limit: 2 });
    expect(first.modelId).toBe(modelId);
    expect(first.threshold).toBe(threshold);
    expect(first.hits.every((h) => h.samePerson && h.score >= threshold)).toBe(true);
    expect(first.nextOffset).toBe(2);
    const second = await history.searchByPhoto(ann, { limit: 2, offset: 2 });
    expect(second.hits.map((h) => h.samePerson)).toEqual([true, false]);
    expect([...first.hits, second.hits[0]!].map((h) => h.sighting.id).sort()).toEqual([
      "ann-door-1",
      "ann-door-2",
      "ann-lobby",
    ]);
    const all = await history.searchByPhoto(ann, { limit: 100 });
    expect(all.hits).toHaveLength(10);
    expect(all.nextOffset).toBeNull();
    expect(all.hits.filter((h) => h.samePerson).map((h) => h.sighting.id)).toHaveLength(3);

    const lobby = await history.searchByPhoto(ann, { limit: 5, cameras: ["lobby"], since: now - 25_000 });
    expect(lobby.hits.map((h) => h.sighting.id)).toEqual(["ann-lobby"]);
    const upload = await history.searchByPhoto(
      { name: "bo.jpg", bytes: new Uint8Array(readFileSync(bo)) },
      {
        limit: 1,
      },
    );
    expect(upload.hits[0]).toMatchObject({ sighting: { id: "bo-door" }, samePerson: true });

    await expect(history.searchByPhoto(group, { limit: 5 })).rejects.toThrow(
      /faces found; the photo must show one person/,
    );
    await expect(history.searchByPhoto(group, { limit: 5 })).rejects.toBeInstanceOf(InvalidInputError);
    await expect(history.searchByPhoto(ann, { limit: 0 })).rejects.toBeInstanceOf(InvalidInputError);
    await expect(history.searchByPhoto(ann, { limit: 5, since: 10, until: 5 })).rejects.toBeInstanceOf(
      InvalidInputError,
    );
  });

  it("browses sightings newest first without a photo, and serves one sighting and its crop", async () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await history.browseSightings({ limit: 4, cursor, cameras: ["door"] });
      seen.push(...page.items.map((s) => s.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(seen).toEqual(["bo-door", "ann-door-2", "x5", "x3", "x1", "ann-door-1"]);
    const ann = await history.browseSightings({ limit: 10, personId: "ann", since: now - 50_000 });
    expect(ann.items.map((s) => s.id)).toEqual(["ann-lobby", "ann-door-2"]);

    const one = await history.sighting("bo-door");
    expect(one).toEqual({
      id: "bo-door",
      trackId: "t-bo-door",
      cameraId: "door",
      startTs: now - 30_000,
      endTs: now - 26_000,
      faces: 5,
      modelId,
      quality: q,
      match: null,
    });
    expect(Array.from(await history.sightingCrop("bo-door"))).toEqual([0xff, 0xd8, 7]);
    await expect(history.sighting("nope")).rejects.toBeInstanceOf(NotFoundError);
    await expect(history.sightingCrop("nope")).rejects.toBeInstanceOf(NotFoundError);
  });

  it("builds a person's timeline by id and by photo", async () => {
    const byId = await history.timeline({ personId: "ann" }, { mergeGapMs: 30_000 });
    expect(byId.sightings).toBe(3);
    expect(byId.visits.map((v) => [v.cameraId, v.sightings])).toEqual([
      ["door", ["ann-door-1", "ann-door-2"]],
      ["lobby", ["ann-lobby"]],
    ]);
    // By photo: the same path, found from the face alone, with the threshold that decided it.
    const byPhoto = await history.timeline({ photo: ann }, { mergeGapMs: 10_000 });
    expect(byPhoto.threshold).toBe(threshold);
    expect(byPhoto.visits.map((v) => [v.cameraId, v.sightings])).toEqual([
      ["door", ["ann-door-1"]],
      ["door", ["ann-door-2"]],
      ["lobby", ["ann-lobby"]],
    ]);
    const late = await history.timeline({ photo: ann }, { since: now - 30_000 });
    expect(late.visits.map((v) => v.cameraId)).toEqual(["lobby"]);
  });

  it("lists alerts with filters and paging, acknowledges them, and serves one with its crop", async () => {
    const page = await history.listAlerts({ limit: 2 });
    expect(page.items.map((a) => a.id)).toEqual(["alert-2", "alert-3"]);
    const rest = await history.listAlerts({ limit: 2, cursor: page.nextCursor! });
    expect(rest).toMatchObject({ items: [{ id: "alert-1" }], nextCursor: null });
    expect((await history.listAlerts({ limit: 5, watchlistId: "vip" })).items.map((a) => a.id)).toEqual([
      "alert-2",
      "alert-1",
    ]);
    expect(await history.countAlerts({ acknowledged: false })).toBe(3);

    const acked = await history.acknowledgeAlert("alert-3", { by: "sam", note: "known visitor" });
    expect(acked.acknowledged).toEqual({ by: "sam", ts: now, note: "known visitor" });
    expect((await history.listAlerts({ limit: 5, acknowledged: false })).items.map((a) => a.id)).toEqual([
      "alert-2",
      "alert-1",
    ]);
    expect((await history.acknowledgeAlert("alert-3", { by: "kim" })).acknowledged!.by).toBe("sam");
    await expect(history.acknowledgeAlert("nope", { by: "sam" })).rejects.toBeInstanceOf(NotFoundError);
    await expect(history.acknowledgeAlert("alert-1", { by: " " })).rejects.toBeInstanceOf(InvalidInputError);

    const one = await history.alert("alert-2");
    expect(one).toMatchObject({ id: "alert-2", personId: "ann", cameraId: "lobby", acknowledged: null });
    expect(one).not.toHaveProperty("vector");
    expect(Array.from(await history.alertCrop("alert-2"))).toEqual([0xff, 0xd8, (now - 20_000) % 256]);
    await expect(history.alert("nope")).rejects.toBeInstanceOf(NotFoundError);
    await expect(history.listAlerts({ limit: 5, cursor: "garbage" })).rejects.toBeInstanceOf(
      InvalidInputError,
    );
  });
});
