import { describe, expect, it } from "vitest";
import { runEmbedded } from "../cli/commands/run.ts";
import { iou, type Box } from "../lib/geometry/index.ts";
import { prepareSampleMedia } from "../lib/media/sample-media.ts";
import { decodeImage } from "../lib/vision/pixels/image.ts";
import { collect, ofType, sharedVision, testConfig } from "./helpers.ts";

const config = testConfig();
/** As slideshowVideo makes the demo's video: each photo 2 s, letterboxed into 1280×720. */
const SECONDS_EACH = 2;

/**
 * The demo's own ground truth: its watchlist is the largest face of photo 1 (person-a) and of photo 4
 * (person-b), and the six photos show different people. A sighting is that person exactly when its first face
 * is shown during that photo's two seconds and sits where that face is in the letterboxed frame.
 */
describe("npm run demo, checked against its own ground truth", () => {
  it("labels no sighting with the wrong person and alerts on both watchlisted people", async () => {
    const vision = await sharedVision();
    const media = await prepareSampleMedia(vision, config.dataDir);
    const truth: { personId: string; photo: number; box: Box }[] = [];
    for (const person of media.people) {
      // The face cropLargestFace cut the watchlist photo from, placed where the letterboxed video shows it.
      const original = await decodeImage(person.from, person.from);
      const faces = await vision.detector.detect(original);
      const big = faces.reduce((a, b) =>
        b.box.width * b.box.height > a.box.width * a.box.height ? b : a,
      ).box;
      const scale = Math.min(1280 / original.width, 720 / original.height);
      const ox = (1280 - original.width * scale) / 2;
      const oy = (720 - original.height * scale) / 2;
      truth.push({
        personId: person.id,
        photo: media.photos.indexOf(person.from),
        box: {
          x: big.x * scale + ox,
          y: big.y * scale + oy,
          width: big.width * scale,
          height: big.height * scale,
        },
      });
    }

    const { events, emit } = collect();
    await runEmbedded(
      config,
      vision,
      { source: [media.video], watchlist: media.watchlistDir, events: "ndjson" },
      emit,
    );
    const faces = new Map(ofType(events, "face").map((f) => [f.faceId, f]));
    const start = Math.min(...[...faces.values()].map((f) => f.ts));
    /** Who a face really is: a watchlisted person, or null for everyone else in the photos. */
    const whoIs = (faceId: string) => {
      const face = faces.get(faceId);
      expect(face, `face ${faceId} was announced`).toBeDefined();
      const photo = Math.floor((face!.ts - start) / (SECONDS_EACH * 1000));
      return truth.find((t) => t.photo === photo && iou(t.box, face!.box) > 0.5)?.personId ?? null;
    };

    const sightings = ofType(events, "sighting");
    expect(sightings.length).toBeGreaterThan(10);
    const wrong = sightings
      .filter((s) => s.personId !== null)
      .map((s) => ({ s, truly: whoIs(s.sightingId.replace(/^sighting:/, "")) }))
      .filter(({ s, truly }) => s.personId !== truly);
    expect(
      wrong.map(
        ({ s, truly }) =>
          `${s.sightingId} labelled ${s.personId} (score ${s.score}) is ${truly ?? "a stranger"}`,
      ),
    ).toEqual([]);
    // Each watchlisted person's pass in front of the camera is a labelled sighting…
    for (const t of truth) {
      const theirs = sightings.filter((s) => whoIs(s.sightingId.replace(/^sighting:/, "")) === t.personId);
      expect(theirs.length, `${t.personId} was tracked`).toBeGreaterThan(0);
      expect(theirs.every((s) => s.personId === t.personId)).toBe(true);
    }
    // …and raised an alert, for that person's face and no one else's.
    const alerts = ofType(events, "alert");
    expect(new Set(alerts.map((a) => a.personId))).toEqual(new Set(truth.map((t) => t.personId)));
    for (const a of alerts) expect(whoIs(a.faceId)).toBe(a.personId);
  }, 120_000);
});
