import path from "node:path";
import { describe, expect, it } from "vitest";
import { runEmbedded } from "../cli/commands/run.ts";
import { UnknownService } from "../lib/identities/service.ts";
import { cropLargestFace, samplePhotos, slideshowVideo } from "../lib/media/sample-media.ts";
import { storePath } from "../lib/config/index.ts";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import { photoEmbedder } from "../lib/watchlist/photo.ts";
import { WatchlistService } from "../lib/watchlist/service.ts";
import { collect, ofType, sharedVision, tempDir, testConfig } from "./helpers.ts";

/**
 * The whole loop on real media (the npm sample photos, always available): a stranger nobody enrolled passes two
 * cameras and becomes one unknown identity; an operator promotes it; the next time the face shows, it alerts.
 */
describe("unknown identities end to end, through vigil run", () => {
  it("one stranger on two cameras → one identity with both → promoted → alerts on a third clip", async () => {
    const vision = await sharedVision();
    const config = testConfig({ "ingest.fps": 5 });
    const dir = tempDir("vigil-unknowns-e2e-");
    const photos = await samplePhotos(path.resolve(".vigil/cache"));
    // One person's face from photo 1, framed differently for each camera: close on one, wider on the other.
    const close = path.join(dir, "close.jpg");
    const wide = path.join(dir, "wide.jpg");
    await cropLargestFace(vision, photos[0]!, close, 0.5);
    await cropLargestFace(vision, photos[0]!, wide, 1.2);
    const camA = path.join(dir, "cam-a.mp4");
    const camB = path.join(dir, "cam-b.mp4");
    await slideshowVideo([close], camA, { secondsEach: 2, width: 640, height: 360 });
    await slideshowVideo([wide], camB, { secondsEach: 2, width: 960, height: 540 });

    const first = collect();
    await runEmbedded(config, vision, { source: [camA, camB], events: "ndjson" }, first.emit);
    expect(ofType(first.events, "alert")).toEqual([]);
    const sightings = ofType(first.events, "sighting");
    expect(new Set(sightings.map((s) => s.cameraId))).toEqual(new Set(["cam-1", "cam-2"]));
    expect(sightings.every((s) => s.personId === null)).toBe(true);

    const store = new SqliteStore(storePath(config));
    try {
      const { items } = await store.unknowns.listUnknowns({ limit: 10 });
      // One face, one stranger: every sighting of both cameras in one identity.
      expect(items).toHaveLength(1);
      const stranger = items[0]!;
      expect(stranger.cameras).toEqual(["cam-1", "cam-2"]);
      expect(stranger.count).toBe(sightings.length);
      for (const s of sightings) expect((await store.getSighting(s.sightingId))!.unknownId).toBe(stranger.id);
      // …and each sighting event said so as it happened.
      expect(sightings.map((s) => s.unknownId)).toEqual(sightings.map(() => stranger.id));

      const unknowns = new UnknownService({
        store: store.unknowns,
        sightings: store,
        watchlist: new WatchlistService({ store, photos: photoEmbedder(vision) }),
      });
      await unknowns.name(stranger.id, "Visitor");
      const promoted = await unknowns.promote(stranger.id, { personId: "visitor" });
      expect(promoted.personId).toBe("visitor");
      expect(promoted.enrolled.length).toBeGreaterThan(0);
      expect(promoted.enrolled.length + promoted.rejected.length).toBe(stranger.bestSightings.length);
      expect(await store.getPerson("visitor")).toMatchObject({
        name: "Visitor",
        faces: promoted.enrolled.length,
      });
    } finally {
      store.close();
    }

    // The face again, framed a third way: now it is someone on the watchlist.
    const third = path.join(dir, "third.jpg");
    await cropLargestFace(vision, photos[0]!, third, 0.8);
    const camC = path.join(dir, "cam-c.mp4");
    await slideshowVideo([third], camC, { secondsEach: 2, width: 800, height: 450 });
    const again = collect();
    await runEmbedded(config, vision, { source: [camC], events: "ndjson" }, again.emit);
    const alerts = ofType(again.events, "alert");
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ personId: "visitor", cameraId: "cam-1" });
    expect(alerts[0]!.score).toBeGreaterThanOrEqual(alerts[0]!.threshold);
  }, 180_000);
});
