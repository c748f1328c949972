import { beforeAll, describe, expect, it } from "vitest";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import sharp from "sharp";
import { cosine } from "../lib/geometry/index.ts";
import { cropLargestFace, samplePhotos } from "../lib/media/sample-media.ts";
import type { Sighting } from "../lib/store/sighting-store.ts";
import { InvalidInputError, NotFoundError } from "../lib/store/errors.ts";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import type { Vision } from "../lib/vision/inference/vision.ts";
import { decodeImage, encodeJpeg } from "../lib/vision/pixels/image.ts";
import { RecordedChanges } from "../lib/watchlist/changes.ts";
import { embedSingleFace, photoEmbedder } from "../lib/watchlist/photo.ts";
import { WatchlistService } from "../lib/watchlist/service.ts";
import { sharedVision, tempDir } from "./helpers.ts";

/**
 * Real faces from the npm sample photos (always available): two crops of one person ("ann", two margins, so two
 * different photos), one of another ("bo"), a group photo, a thumbnail too small for the quality gate, and a text
 * file pretending to be a photo.
 */
interface Faces {
  ann: string;
  ann2: string;
  bo: string;
  group: string;
  tiny: string;
  notImage: string;
}

async function prepareFaces(vision: Vision, dir: string): Promise<Faces> {
  const photos = await samplePhotos(path.resolve(".vigil/cache"));
  const faces = {
    ann: path.join(dir, "ann.jpg"),
    ann2: path.join(dir, "ann-wide.jpg"),
    bo: path.join(dir, "bo.jpg"),
    group: photos[2]!,
    tiny: path.join(dir, "tiny.jpg"),
    notImage: path.join(dir, "notes.jpg"),
  };
  await cropLargestFace(vision, photos[0]!, faces.ann, 0.6);
  await cropLargestFace(vision, photos[0]!, faces.ann2, 0.9);
  await cropLargestFace(vision, photos[3]!, faces.bo, 0.6);
  await sharp(faces.ann).resize(40).jpeg().toFile(faces.tiny);
  writeFileSync(faces.notImage, "not a photo at all\n");
  return faces;
}

const clock = () => 1_700_000_000_000;

describe("WatchlistService on the embedded store, with the real models", () => {
  let vision: Vision;
  let faces: Faces;
  let vectorOf: (file: string) => Promise<Float32Array>;
  let modelId: string;

  beforeAll(async () => {
    vision = await sharedVision();
    faces = await prepareFaces(vision, tempDir());
    modelId = vision.embedder.modelId;
    vectorOf = async (file) => {
      const r = await embedSingleFace(vision, file, file);
      if (!r.ok) throw new Error(`${file}: ${r.reason}`);
      return r.vector;
    };
  });

  const open = (file = path.join(tempDir(), "vigil.db")) => {
    const store = new SqliteStore(file);
    const changes = new RecordedChanges();
    const service = new WatchlistService({ store, photos: photoEmbedder(vision), changes, clock });
    return { store, changes, service, file };
  };

  it("enrols a person from files and uploads, with the reason for every refused photo, and announces it", async () => {
    const { store, changes, service } = open();
    const seen: string[] = [];
    const result = await service.enrol(
      { id: "ann", name: "Ann Example", watchlistId: "vip" },
      [
        faces.ann,
        faces.group,
        faces.notImage,
        faces.tiny,
        { name: "upload.jpg", bytes: new Uint8Array(readFileSync(faces.ann2)) },
      ],
      (o) => seen.push(o.file),
    );
    expect(result.outcomes.map((o) => [path.basename(o.file), o.ok, o.faceId])).toEqual([
      ["ann.jpg", true, "ann:ann.jpg"],
      [path.basename(faces.group), false, undefined],
      ["notes.jpg", false, undefined],
      ["tiny.jpg", false, undefined],
      ["upload.jpg", true, "ann:upload.jpg"],
    ]);
    const reasons = result.outcomes.map((o) => o.reason);
    expect(reasons[1]).toMatch(/^\d+ faces found; the photo must show one person$/);
    expect(reasons[2]).toMatch(/^not an image/);
    expect(reasons[3]).toMatch(/^(no face found|below the quality gate: )/);
    expect(seen).toHaveLength(5);
    expect(result.person).toEqual({ id: "ann", name: "Ann Example", watchlistId: "vip", faces: 2 });
    expect(changes.changes).toEqual([{ kind: "enrolled", watchlistId: "vip", personId: "ann", ts: clock() }]);
    expect(await service.listPeople()).toEqual([
      { id: "ann", name: "Ann Example", watchlistId: "vip", faces: 2 },
    ]);
    const details = await service.person("ann");
    expect(details.photos.map((p) => [p.faceId, p.source, p.modelId])).toEqual([
      ["ann:ann.jpg", faces.ann, modelId],
      ["ann:upload.jpg", "upload.jpg", modelId],
    ]);
    // The enrolled vectors are the person: a fresh embedding of her photo matches her best, far above bo's.
    const [hits] = await store.match(modelId, [await vectorOf(faces.ann)], 1);
    expect(hits![0]).toMatchObject({ person: { id: "ann" }, faceId: "ann:ann.jpg" });
    expect(hits![0]!.score).toBeGreaterThan(0.99);
    const [forBo] = await store.match(modelId, [await vectorOf(faces.bo)], 1);
    expect(forBo![0]!.score).toBeLessThan(0.4);
    // Each enrolled photo keeps the aligned face it was embedded from: a JPEG at the embedder's input size.
    expect(details.photos.every((p) => p.hasCrop)).toBe(true);
    const crop = await service.photoCrop("ann", "ann:upload.jpg");
    expect(await sharp(crop).metadata()).toMatchObject({
      format: "jpeg",
      width: vision.embedder.width,
      height: vision.embedder.height,
    });
    // The crop is the face: embedded again as an aligned crop, it is the enrolled vector.
    const again = await photoEmbedder(vision).embedAlignedCrop(crop, "crop");
    expect(again.ok && cosine(again.vector, await vectorOf(faces.ann2))).toBeGreaterThan(0.95);
    expect((await service.photoToShow("ann"))?.faceId).toBe("ann:ann.jpg");
    await expect(service.photoCrop("bo", "ann:ann.jpg")).rejects.toBeInstanceOf(NotFoundError);

    // More photos later keep the name and watchlist unless told otherwise.
    const more = await service.enrol({ id: "ann" }, [faces.ann2]);
    expect(more.person).toEqual({ id: "ann", name: "Ann Example", watchlistId: "vip", faces: 3 });
    store.close();
  });

  it("stores nothing for a new person whose photos are all refused, and refuses a bad id", async () => {
    const { store, changes, service } = open();
    const result = await service.enrol({ id: "ghost" }, [faces.group, faces.notImage]);
    expect(result.person).toBeUndefined();
    expect(result.outcomes.every((o) => !o.ok && o.reason)).toBe(true);
    expect(await service.listPeople()).toEqual([]);
    expect(changes.changes).toEqual([]);
    await expect(service.enrol({ id: " padded " }, [faces.ann])).rejects.toBeInstanceOf(InvalidInputError);
    await expect(service.person("ghost")).rejects.toBeInstanceOf(NotFoundError);
    store.close();
  });

  it("enrols a folder with one sub-folder per person", async () => {
    const { store, service } = open();
    const dir = tempDir();
    mkdirSync(path.join(dir, "ann"));
    mkdirSync(path.join(dir, "bo"));
    writeFileSync(path.join(dir, "ann", "1.jpg"), readFileSync(faces.ann));
    writeFileSync(path.join(dir, "bo", "1.jpg"), readFileSync(faces.bo));
    writeFileSync(path.join(dir, "bo", "readme.txt"), "hello");
    writeFileSync(path.join(dir, "stray.jpg"), readFileSync(faces.ann));
    const { people, skipped } = await service.enrolFolder(dir, { watchlistId: "staff" });
    expect(skipped).toEqual([expect.stringMatching(/stray\.jpg: not a person folder/)]);
    expect(people.map((p) => [p.person?.id, p.outcomes.map((o) => o.ok)])).toEqual([
      ["ann", [true]],
      ["bo", [true, false]],
    ]);
    expect((await service.listPeople()).map((p) => [p.id, p.watchlistId, p.faces])).toEqual([
      ["ann", "staff", 1],
      ["bo", "staff", 1],
    ]);
    store.close();
  });

  it("removes a photo and a person, announcing each; unknown ones are NotFoundError", async () => {
    const { store, changes, service } = open();
    await service.enrol({ id: "ann", watchlistId: "vip" }, [faces.ann, faces.ann2]);
    await service.removePhoto("ann:ann-wide.jpg");
    expect((await service.person("ann")).faces).toBe(1);
    await expect(service.removePhoto("ann:ann-wide.jpg")).rejects.toBeInstanceOf(NotFoundError);
    await service.removePerson("ann");
    await expect(service.removePerson("ann")).rejects.toBeInstanceOf(NotFoundError);
    expect(await service.listPeople()).toEqual([]);
    expect(changes.changes.map((c) => [c.kind, c.watchlistId, c.personId])).toEqual([
      ["enrolled", "vip", "ann"],
      ["removed", "vip", "ann"],
      ["removed", "vip", "ann"],
    ]);
    const [hits] = await store.match(modelId, [await vectorOf(faces.ann)], 1);
    expect(hits).toEqual([]);
    store.close();
  });

  it('says "this is not ann" from a photo, a sighting and an alert (with a stored vector or only its crop)', async () => {
    const { store, changes, service } = open();
    await service.enrol({ id: "ann" }, [faces.ann]);
    const boVector = await vectorOf(faces.bo);
    const annVector = await vectorOf(faces.ann2);
    const exclusion = async () => store.exclusionScore("ann", modelId, boVector);
    expect(await exclusion()).toBe(-1);

    const fromPhoto = await service.excludeFromPhoto("ann", faces.bo, "the night guard");
    expect(fromPhoto).toMatchObject({ personId: "ann", modelId, note: "the night guard" });
    expect(await exclusion()).toBeGreaterThan(0.99);
    expect(await store.exclusionScore("ann", modelId, annVector)).toBeLessThan(0.4);
    expect((await service.excludeFromPhoto("ann", faces.bo)).id).toBe(fromPhoto.id); // same face, same exclusion
    await expect(service.excludeFromPhoto("ann", faces.group)).rejects.toThrow(/faces found/);
    await expect(service.excludeFromPhoto("nobody", faces.bo)).rejects.toBeInstanceOf(NotFoundError);
    await service.removeExclusion("ann", fromPhoto.id);
    expect(await exclusion()).toBe(-1);

    const q = { faceSize: 80, interOcular: 30, sharpness: 100, yawDeg: 0, pitchDeg: 0, detScore: 0.9 };
    const sighting = (id: string, match: Sighting["match"]): Sighting => ({
      id,
      trackId: id,
      cameraId: "door",
      startTs: 1000,
      endTs: 2000,
      faces: 4,
      modelId,
      quality: q,
      match,
      vector: boVector,
      crop: new Uint8Array(1),
    });
    await store.addSightings([
      sighting("sighting:bo", { personId: "ann", name: "ann", score: 0.5 }),
      sighting("sighting:nobody", null),
    ]);
    const fromSighting = await service.excludeFromSighting("sighting:bo");
    expect(fromSighting).toEqual({
      id: "ann:exclusion:sighting:bo",
      personId: "ann",
      modelId,
      note: "sighting sighting:bo",
    });
    expect(await exclusion()).toBeGreaterThan(0.99);
    await expect(service.excludeFromSighting("sighting:nobody")).rejects.toBeInstanceOf(InvalidInputError);
    await expect(service.excludeFromSighting("sighting:none")).rejects.toBeInstanceOf(NotFoundError);
    await service.removeExclusion("ann", fromSighting.id);

    // An alert's crop is the aligned face the embedder saw; an alert stored without its vector is embedded again.
    const [aligned] = await vision.analyzer.analyze(await decodeImage(faces.bo));
    const alert = (id: string, vector: Float32Array | null) => ({
      id,
      watchlistId: "default",
      personId: "ann",
      personName: "ann",
      cameraId: "door",
      ts: 5000,
      score: 0.45,
      threshold: 0.44,
      modelId,
      faceId: `${id}:face`,
      box: { x: 0, y: 0, width: 100, height: 100 },
      crop: Uint8Array.from([]),
      vector,
    });
    const crop = await encodeJpeg(aligned!.crop);
    await store.addAlerts([
      { ...alert("alert:with-vector", boVector), crop },
      { ...alert("alert:crop-only", null), crop },
    ]);
    const withVector = await service.excludeFromAlert("alert:with-vector");
    expect(withVector.id).toBe("ann:exclusion:alert:with-vector");
    expect(await exclusion()).toBeGreaterThan(0.99);
    await service.removeExclusion("ann", withVector.id);
    const cropOnly = await service.excludeFromAlert("alert:crop-only", { note: "false alarm" });
    expect(cropOnly).toMatchObject({ personId: "ann", modelId, note: "false alarm" });
    expect(await exclusion()).toBeGreaterThan(0.8);
    expect(await store.exclusionScore("ann", modelId, annVector)).toBeLessThan(0.4);
    await expect(service.excludeFromAlert("alert:none")).rejects.toBeInstanceOf(NotFoundError);

    expect((await service.listExclusions("ann")).map((e) => e.id)).toEqual([cropOnly.id]);
    await expect(service.removeExclusion("ann", "no-such")).rejects.toBeInstanceOf(NotFoundError);
    expect(changes.changes.filter((c) => c.kind === "excluded")).toHaveLength(8);
    expect(cosine(boVector, annVector)).toBeLessThan(0.4);
    store.close();
  });

  it("sets and clears per-watchlist thresholds, refusing values outside [-1, 1]", async () => {
    const { store, changes, service } = open();
    expect(await service.watchlist("vip")).toEqual({ id: "vip", threshold: undefined, people: 0 });
    expect(await service.setThreshold("vip", 0.55)).toEqual({ id: "vip", threshold: 0.55, people: 0 });
    expect(await store.watchlistThreshold("vip")).toBe(0.55);
    await expect(service.setThreshold("vip", 1.5)).rejects.toBeInstanceOf(InvalidInputError);
    await expect(service.setThreshold("vip", Number.NaN)).rejects.toBeInstanceOf(InvalidInputError);
    await service.enrol({ id: "ann", watchlistId: "vip" }, [faces.ann]);
    expect(await service.listWatchlists()).toEqual([{ id: "vip", threshold: 0.55, people: 1 }]);
    expect(await service.setThreshold("vip", null)).toEqual({ id: "vip", threshold: undefined, people: 1 });
    expect(changes.changes.map((c) => c.kind)).toEqual(["threshold", "enrolled", "threshold"]);
    store.close();
  });

  it("a person enrolled through the service on one connection is matched by another, running, within 2 s", async () => {
    const { store, service, file } = open();
    const running = new SqliteStore(file);
    const probe = await vectorOf(faces.ann2);
    expect((await running.match(modelId, [probe], 1))[0]).toEqual([]);
    await service.enrol({ id: "ann" }, [faces.ann]);
    const start = performance.now();
    while (((await running.match(modelId, [probe], 1))[0] ?? []).length === 0) {
      expect(performance.now() - start).toBeLessThan(2000);
      await new Promise((r) => setTimeout(r, 20));
    }
    running.close();
    store.close();
  });
});
