import { execFile } from "node:child_process";
import { promisify } from "node:util";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../lib/config/index.ts";
import { AlertContract, SightingContract, Topics } from "../lib/contracts/index.ts";
import { cropLargestFace, samplePhotos, slideshowVideo } from "../lib/media/sample-media.ts";
import { openCheckedStore } from "../lib/store/open-store.ts";
import { S3Server, s3UnavailableReason } from "../lib/testing/s3/index.ts";
import { collect, until, useKafka } from "./kafka-helpers.ts";
import { useQdrant } from "./qdrant-helpers.ts";
import { sharedVision, tempDir } from "./helpers.ts";

/**
 * The scale-out path on real parts only (issue #24 item 2): `vigil serve` for every stage as its own process over
 * a real Kafka broker, the Qdrant store on a real Qdrant server, crops in a real S3 server (s3s-fs). A video in;
 * the watchlisted person's alert out; the sightings searchable by her face in Qdrant, their crops in the bucket.
 */
const harness = useKafka();
const qdrant = useQdrant("the scale-out path end to end");
const s3Missing = s3UnavailableReason();
if (s3Missing) console.log(`skipping the scale-out path on real parts: ${s3Missing}`);
let s3: S3Server | undefined;
beforeAll(async () => {
  if (!s3Missing && !qdrant.skip) s3 = await S3Server.start();
});
afterAll(async () => {
  await s3?.destroy();
});

describe.skipIf(!!qdrant.skip || !!s3Missing)("vigil serve over Kafka, Qdrant and S3", () => {
  it("frames in; alerts, and sightings searchable by face with their crops, out", async (ctx) => {
    if (!harness.kafka()) return ctx.skip();
    const vision = await sharedVision();
    const media = tempDir();
    const photos = await samplePhotos(path.resolve(".vigil/cache"));
    const video = path.join(media, "slideshow.mp4");
    // Alice, then others for longer than match.trackTimeoutS (3 s), so her first track ends (a sighting) while
    // the camera still runs, then Alice again.
    await slideshowVideo([photos[0]!, photos[1]!, photos[2]!, photos[1]!, photos[0]!], video, {
      secondsEach: 1.2,
      width: 960,
      height: 540,
    });
    const face = path.join(media, "alice.jpg");
    await cropLargestFace(vision, photos[0]!, face);
    const { url, prefix } = await qdrant.endpoint();
    const store = {
      kind: "qdrant",
      qdrantUrl: url,
      qdrantPrefix: prefix,
      crops: {
        kind: "s3",
        s3: {
          bucket: await s3!.createBucket(),
          endpoint: s3!.endpoint,
          forcePathStyle: true,
          accessKeyId: s3!.accessKey,
          secretAccessKey: s3!.secretKey,
        },
      },
    };
    const d = await harness.deployment({ cameras: [{ id: "door", url: video }], store });
    // Not spawnSync: the checking proxy the CLI talks to runs in this process and must keep answering.
    await promisify(execFile)(
      process.execPath,
      ["bin/vigil.js", "--config", d.configFile, "enroll", "--person", "alice", face],
      { encoding: "utf8", timeout: 120_000 },
    );

    const alerts = await collect(d.bus, Topics.alerts);
    const sightings = await collect(d.bus, Topics.sightings);
    const stages = ["match", "embed", "detect-align"].map((s) => d.start(s));
    await Promise.all(stages.map((s) => s.ready()));
    const ingest = d.start("ingest");
    expect((await ingest.exited).code).toBe(0);
    const hit = await until("an alert for alice", () =>
      alerts.records.map((r) => AlertContract.decode(r.value)).find((a) => a.personId === "alice"),
    );
    expect(hit).toMatchObject({ personId: "alice", cameraId: "door" });
    const hers = await until("a sighting of alice", () =>
      sightings.records
        .map((r) => SightingContract.decode(r.value))
        .find((s) => s.match?.personId === "alice"),
    );
    for (const s of stages) expect((await s.kill("SIGTERM")).code).toBe(0);
    await alerts.stop();
    await sightings.stop();

    // What the API and `vigil search` read: the same store, from the same config.
    const db = await openCheckedStore(loadConfig({ file: d.configFile }));
    try {
      expect(await db.getAlert(hit.alertId)).toMatchObject({ personId: "alice", cameraId: "door" });
      const [enrolled] = await db.listFaceVectors(hit.modelId);
      const found = await db.search({ modelId: hit.modelId, vector: enrolled!.vector, top: 5 });
      // Her face finds her sightings first (she passes twice: either may rank first).
      expect(found[0]!.sighting.match?.personId).toBe("alice");
      expect(found.map((h) => h.sighting.id)).toContain(hers.sightingId);
      // Crops from the bucket: JPEGs, for the sighting and the alert alike.
      for (const crop of [await db.crop(hers.sightingId), await db.alertCrop(hit.alertId)])
        expect([...crop!.subarray(0, 2)]).toEqual([0xff, 0xd8]);
    } finally {
      db.close();
    }
    expect(qdrant.violations()).toEqual([]);
  }, 300_000);
});
