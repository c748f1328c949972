import { QdrantClient } from "@qdrant/js-client-rest";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { benchPipeline } from "../cli/commands/bench-pipeline.ts";
import { childProcesses } from "../cli/commands/rtsp-scene.ts";
import { samplePhotos, slideshowVideo } from "../lib/media/sample-media.ts";
import { qdrantUnavailableReason } from "../lib/testing/qdrant/server.ts";
import { useKafka } from "./kafka-helpers.ts";
import { useQdrant } from "./qdrant-helpers.ts";
import { sharedVision, tempDir, testConfig } from "./helpers.ts";

/**
 * `vigil bench pipeline --store qdrant` (issue #24 item 2), briefly: the match stage of the end-to-end run writes
 * to a real Qdrant, and the result says so. The figures themselves are the command's to print; no timing here.
 */
const harness = useKafka();
const qdrant = useQdrant("bench pipeline --store qdrant");
// The bench starting a server of its own needs ../shared/qdrant whatever QDRANT_URL says.
const noLocal = qdrantUnavailableReason();
if (noLocal) console.log(`skipping bench pipeline starting its own Qdrant: ${noLocal}`);

/** The Qdrant servers this process runs now, by name and count (the file's own one included). */
const qdrantChildren = () => Object.entries(childProcesses()).filter(([name]) => /^qdrant/.test(name));

describe("vigil bench pipeline --store qdrant", () => {
  it.skipIf(!!qdrant.skip)(
    "runs the match stage on Qdrant: its sightings and alerts are points there, and the result names the store",
    { timeout: 300_000 },
    async (ctx) => {
      const kafka = harness.kafka();
      if (!kafka) return ctx.skip();
      const config = testConfig();
      const vision = await sharedVision();
      // Three people in turn, 2 s each: each is gone 4 s a round, longer than match.trackTimeoutS (3 s), so
      // tracks end (and sightings are written) while the cameras run. The bench's talking head never leaves.
      const photos = await samplePhotos(path.resolve(".vigil/cache"));
      const video = path.join(tempDir(), "bench-pipeline-3x2s.mp4");
      await slideshowVideo(photos.slice(0, 3), video, { secondsEach: 2, width: 960, height: 540 });
      // Through the file's checking proxy: every request the stages and the bench send is held to the OpenAPI.
      const { url } = await qdrant.endpoint();
      const r = await benchPipeline(config, vision, {
        brokers: [kafka.address],
        cameras: 1,
        seconds: 6,
        windowS: 2,
        faces: 1500,
        store: "qdrant",
        qdrantUrl: [url],
        video,
      });
      console.log(JSON.stringify(r));
      expect(r.store).toBe("qdrant");
      expect(r.qdrant).toMatchObject({ url, startedForRun: false });
      expect(r.framesOffered).toBeGreaterThan(0);
      expect(r.facesPerSecond1).toBeGreaterThan(0);

      // Counted on the server itself, past the proxy and the store.
      const raw = new QdrantClient({ url: qdrant.url(), checkCompatibility: false });
      const names = (await raw.getCollections()).collections.map((c) => c.name);
      const count = async (prefix: string) => {
        let n = 0;
        for (const name of names.filter((c) => c.startsWith(prefix)))
          n += (await raw.count(name, { exact: true })).count;
        return n;
      };
      const sightings = await count(`${r.qdrant!.prefix}_sightings__`);
      expect(sightings).toBeGreaterThan(0);
      expect(sightings).toBe(r.stored.sightings);
      const alerts = await count(`${r.qdrant!.prefix}_alerts`);
      expect(alerts).toBeGreaterThan(0);
      expect(alerts).toBe(r.stored.alerts);
      // The enrolled subject went to Qdrant too: the match stage found her there.
      expect(await count(`${r.qdrant!.prefix}_watchlist__`)).toBeGreaterThan(0);
      expect(qdrant.violations()).toEqual([]);
    },
  );

  it.skipIf(!!noLocal)("stops the Qdrant it started when the run fails", { timeout: 120_000 }, async () => {
    const before = qdrantChildren();
    // Fails at the cameras' video, after the server has started and before any broker is used.
    const missing = path.join(tempDir(), `missing-${Date.now().toString(36)}.mp4`);
    await expect(
      benchPipeline(testConfig(), await sharedVision(), {
        brokers: ["127.0.0.1:9"],
        cameras: 1,
        seconds: 1,
        windowS: 1,
        faces: 1,
        store: "qdrant",
        video: missing,
      }),
    ).rejects.toThrow(/ffmpeg/);
    expect(qdrantChildren()).toEqual(before);
  });
});
