import path from "node:path";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { seededRandom } from "../lib/eval/cluster.ts";
import { l2normalize } from "../lib/geometry/index.ts";
import { HistoryService } from "../lib/history/service.ts";
import { UnknownService } from "../lib/identities/service.ts";
import { samplePhotos } from "../lib/media/sample-media.ts";
import { InvalidInputError, NotFoundError } from "../lib/store/errors.ts";
import type { Sighting } from "../lib/store/sighting-store.ts";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import { thresholdFor } from "../lib/vision/models/calibration.ts";
import { decodeImage, encodeJpeg } from "../lib/vision/pixels/image.ts";
import { photoEmbedder } from "../lib/watchlist/photo.ts";
import { WatchlistService } from "../lib/watchlist/service.ts";
import { sharedVision, tempDir, testConfig } from "./helpers.ts";

const THRESHOLD = 0.5;

/**
 * The service on a real SQLite file, with the real models: promotion enrols real face crops (aligned, as the
 * match stage stores them) through the normal enrolment and its quality gate.
 */
describe("UnknownService on the embedded store", () => {
  let faceCrops: Uint8Array[];
  let flatCrop: Uint8Array;
  let modelId: string;
  let vision: Awaited<ReturnType<typeof sharedVision>>;

  beforeAll(async () => {
    vision = await sharedVision();
    modelId = vision.embedder.modelId;
    const photos = await samplePhotos(path.resolve(".vigil/cache"));
    // Aligned crops of two faces of photo 1, as a track's best faces are stored.
    const faces = await vision.analyzer.analyze(await decodeImage(photos[0]!, photos[0]!));
    faceCrops = await Promise.all(
      faces.filter((f) => f.quality.reasons.length === 0).map((f) => encodeJpeg(f.crop)),
    );
    expect(faceCrops.length).toBeGreaterThanOrEqual(2);
    // A "best" crop that shows no face (a track that followed a poster's blur, say).
    flatCrop = new Uint8Array(
      await sharp({
        create: { width: 112, height: 112, channels: 3, background: { r: 120, g: 120, b: 120 } },
      })
        .jpeg()
        .toBuffer(),
    );
  });

  /** A fresh store with the service over it. */
  function setup() {
    const store = new SqliteStore(path.join(tempDir(), "vigil.db"));
    const watchlist = new WatchlistService({ store, photos: photoEmbedder(vision) });
    const unknowns = new UnknownService({ store: store.unknowns, sightings: store, watchlist });
    const random = seededRandom(11);
    const direction = () => l2normalize(new Float32Array(64).map(() => random() - 0.5));
    const near = (v: Float32Array) => {
      const d = direction();
      return l2normalize(v.map((x, k) => x + 0.2 * d[k]!));
    };
    const see = async (
      id: string,
      cameraId: string,
      startTs: number,
      vector: Float32Array,
      crop: Uint8Array,
      sharpness = 100,
      model = modelId,
    ) => {
      const s: Sighting = {
        id,
        trackId: `t-${id}`,
        cameraId,
        startTs,
        endTs: startTs + 2000,
        faces: 4,
        modelId: model,
        quality: { faceSize: 90, interOcular: 40, sharpness, yawDeg: 0, pitchDeg: 0, detScore: 0.9 },
        match: null,
        vector,
        crop,
      };
      await store.addSightings([s]);
      return (await store.unknowns.assignUnknown(s, THRESHOLD)).id;
    };
    return { store, watchlist, unknowns, direction, near, see };
  }

  it("lists, shows, pages an identity's sightings and names it; refuses what is wrong", async () => {
    const { unknowns, direction, near, see } = setup();
    const face = direction();
    const id = await see("a1", "door", 1000, near(face), faceCrops[0]!);
    await see("a2", "yard", 9000, near(face), faceCrops[1]!);
    await see("a3", "door", 20_000, near(face), faceCrops[0]!);
    const other = await see("b1", "lobby", 5000, direction(), faceCrops[1]!);
    expect((await unknowns.list({ limit: 10 })).items.map((u) => u.id)).toEqual([id, other]);
    expect((await unknowns.list({ limit: 10, cameras: ["lobby"] })).items.map((u) => u.id)).toEqual([other]);
    expect(await unknowns.get(id)).toMatchObject({ count: 3, cameras: ["door", "yard"], firstSeen: 1000 });
    const page1 = await unknowns.sightings(id, { limit: 2 });
    const page2 = await unknowns.sightings(id, { limit: 2, cursor: page1.nextCursor! });
    expect([...page1.items, ...page2.items].map((s) => s.id)).toEqual(["a3", "a2", "a1"]);
    expect(page2.nextCursor).toBeNull();

    expect((await unknowns.name(id, "Courier")).name).toBe("Courier");
    expect((await unknowns.get(id)).name).toBe("Courier");
    expect((await unknowns.name(id, null)).name).toBeNull();
    await expect(unknowns.name(id, " padded ")).rejects.toBeInstanceOf(InvalidInputError);
    await expect(unknowns.name("unknown-000000000000", "x")).rejects.toBeInstanceOf(NotFoundError);
    await expect(unknowns.get("unknown-000000000000")).rejects.toBeInstanceOf(NotFoundError);
    await expect(unknowns.sightings("nope", { limit: 5 })).rejects.toBeInstanceOf(NotFoundError);
    await expect(unknowns.list({ limit: 5, seenSince: 10, seenUntil: 5 })).rejects.toBeInstanceOf(
      InvalidInputError,
    );
  });

  it("promotes: each best crop through enrolment's quality gate, refusals reported; then the person matches", async () => {
    const { store, unknowns, direction, near, see } = setup();
    const face = direction();
    // The face-less crop ranks best (sharpest), so it is tried, and refused with the gate's reason.
    const id = await see("p1", "door", 1000, near(face), faceCrops[0]!, 120);
    await see("p2", "yard", 5000, near(face), faceCrops[1]!, 110);
    await see("p3", "yard", 9000, near(face), flatCrop, 300);
    await unknowns.name(id, "Courier");
    const result = await unknowns.promote(id, { watchlistId: "vip" });
    expect(result).toEqual({
      personId: id,
      enrolled: ["p1", "p2"],
      rejected: [{ sightingId: "p3", reason: "no face found" }],
    });
    expect(await store.getPerson(id)).toEqual({ id, name: "Courier", watchlistId: "vip", faces: 2 });
    // Promotion enrols like any enrolment, so the person's photos keep their aligned faces.
    for (const f of await store.listFaces(id)) {
      expect(f.hasCrop).toBe(true);
      expect((await sharp(Buffer.from((await store.faceCrop(f.faceId))!)).metadata()).format).toBe("jpeg");
    }
    expect((await unknowns.get(id)).promotedTo).toBe(id);
    // The enrolled photos are the crops' embeddings: the first crop's face now matches the person.
    const [probe] = await vision.embedder.embed([
      (await vision.analyzer.analyze(await decodeImage(faceCrops[0]!)))[0]!.crop,
    ]);
    const [hits] = await store.match(modelId, [probe!], 1);
    expect(hits![0]!.person.id).toBe(id);
    expect(hits![0]!.score).toBeGreaterThan(thresholdFor(modelId, testConfig()));

    // An identity whose crops all fail leaves no one behind.
    const hopeless = await see("h1", "door", 30_000, direction(), flatCrop);
    const refused = await unknowns.promote(hopeless, { personId: "ghost" });
    expect(refused).toEqual({
      personId: "ghost",
      enrolled: [],
      rejected: [{ sightingId: "h1", reason: "no face found" }],
    });
    expect(await store.getPerson("ghost")).toBeUndefined();
    expect((await unknowns.get(hopeless)).promotedTo).toBeNull();
    await expect(unknowns.promote(hopeless, { personId: " bad" })).rejects.toBeInstanceOf(InvalidInputError);
  });

  it("promotion records whom the identity became without losing what the match stage did during the enrolment", async () => {
    const { store, watchlist, direction, near, see } = setup();
    const face = direction();
    const id = await see("e1", "door", 1000, near(face), faceCrops[0]!);
    const other = await see("e2", "lobby", 2000, direction(), faceCrops[1]!);
    // The real enrolment, with the match stage's work landing while it runs (it takes seconds of model work).
    let during: () => Promise<unknown> = async () => {};
    const busy = Object.assign(Object.create(watchlist) as WatchlistService, {
      enrol: async (...args: Parameters<WatchlistService["enrol"]>) => {
        await during();
        return watchlist.enrol(...args);
      },
    });
    const unknowns = new UnknownService({ store: store.unknowns, sightings: store, watchlist: busy });
    during = () => see("e3", "yard", 5000, near(face), faceCrops[0]!);
    expect((await unknowns.promote(id, { name: "Courier" })).enrolled).toEqual(["e1"]);
    expect(await unknowns.get(id)).toMatchObject({
      count: 2,
      cameras: ["door", "yard"],
      lastSeen: 7000,
      name: "Courier",
      promotedTo: id,
    });
    // An identity merged away during the enrolment is not brought back by the promotion.
    during = () => unknowns.merge(id, other);
    await unknowns.promote(other, { personId: "courier-2" });
    await expect(unknowns.get(other)).rejects.toBeInstanceOf(NotFoundError);
    expect(await unknowns.get(id)).toMatchObject({ count: 3, promotedTo: id });
  });

  it("merges two identities and splits a wrong sighting off, with the sums and counts that follow", async () => {
    const { store, unknowns, direction, near, see } = setup();
    const face = direction();
    const a = await see("m1", "door", 1000, near(face), faceCrops[0]!);
    await see("m2", "door", 3000, near(face), faceCrops[0]!);
    const b = await see("m3", "lobby", 8000, direction(), faceCrops[1]!);
    const c = await see("m4", "lobby", 9000, near(face), faceCrops[1]!, 100, "another-model");

    await expect(unknowns.merge(a, a)).rejects.toBeInstanceOf(InvalidInputError);
    await expect(unknowns.merge(a, "unknown-000000000000")).rejects.toBeInstanceOf(NotFoundError);
    await expect(unknowns.merge(a, c)).rejects.toThrow(/cannot be compared/);
    const merged = await unknowns.merge(a, b);
    expect(merged).toMatchObject({
      id: a,
      count: 3,
      cameras: ["door", "lobby"],
      firstSeen: 1000,
      lastSeen: 10_000,
    });
    expect((await store.getSighting("m3"))!.unknownId).toBe(a);
    await expect(unknowns.get(b)).rejects.toBeInstanceOf(NotFoundError);

    await expect(unknowns.split(a, [])).rejects.toBeInstanceOf(InvalidInputError);
    await expect(unknowns.split(a, ["m4"])).rejects.toThrow(/not one of/);
    await expect(unknowns.split(a, ["nope"])).rejects.toBeInstanceOf(NotFoundError);
    await expect(unknowns.split(a, ["m1", "m2", "m3"])).rejects.toThrow(/nothing to split off/);
    const created = await unknowns.split(a, ["m3"]);
    expect(created).toMatchObject({ count: 1, cameras: ["lobby"], firstSeen: 8000, bestSightings: ["m3"] });
    expect(created.id).toMatch(/^unknown-[0-9a-f]{12}$/);
    expect((await store.getSighting("m3"))!.unknownId).toBe(created.id);
    expect(await unknowns.get(a)).toMatchObject({ count: 2, cameras: ["door"], lastSeen: 5000 });
    // The split-off sighting's vector left the source's centroid: the face seen again joins the source.
    const again = await see("m5", "door", 12_000, near(face), faceCrops[0]!);
    expect(again).toBe(a);
  });

  it("deletes an identity, keeping its sightings unlabelled; its id gives a timeline like a person's", async () => {
    const { store, unknowns, direction, near, see } = setup();
    const face = direction();
    const id = await see("d1", "door", 1000, near(face), faceCrops[0]!);
    await see("d2", "yard", 100_000, near(face), faceCrops[0]!);
    const history = new HistoryService({
      store,
      photos: photoEmbedder(vision),
      thresholdFor: () => THRESHOLD,
    });
    const timeline = await history.timeline({ personId: id });
    expect(timeline.sightings).toBe(2);
    expect(timeline.visits.map((v) => v.cameraId)).toEqual(["door", "yard"]);

    await unknowns.delete(id);
    await expect(unknowns.delete(id)).rejects.toBeInstanceOf(NotFoundError);
    expect((await store.getSighting("d1"))!.unknownId).toBeUndefined();
    expect(await store.count()).toBe(2);
    expect((await history.timeline({ personId: id })).sightings).toBe(0);
  });
});
