import { afterAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { runEmbedded } from "../cli/commands/run.ts";
import { loadConfig } from "../lib/config/index.ts";
import { cropLargestFace, samplePhotos, slideshowVideo } from "../lib/media/sample-media.ts";
import { cameraStream } from "../lib/testing/rtsp/media.ts";
import { RtspTestServer } from "../lib/testing/rtsp/server.ts";
import { collect, ofType, sharedVision, tempDir } from "./helpers.ts";

const servers: RtspTestServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.kill();
});

describe("vigil run with RTSP cameras from the config file", () => {
  it("alerts on a watchlisted person seen by one live camera while another camera shows no one", async () => {
    const vision = await sharedVision();
    const dir = tempDir();
    const photos = await samplePhotos(path.resolve(".vigil/cache"));
    const clip = path.join(dir, "people.mp4");
    await slideshowVideo([photos[4]!, photos[0]!], clip, { secondsEach: 2, width: 960, height: 540 });
    await cropLargestFace(vision, photos[0]!, path.join(dir, "watchlist", "carol", "carol.jpg"));
    const server = await RtspTestServer.start({
      "/entrance": { kind: "file", path: cameraStream(clip, dir, 30, 960, 540) },
      "/yard": { kind: "test", width: 640, height: 360, pattern: "smpte" },
    });
    servers.push(server);
    const configFile = path.join(dir, "vigil.config.json");
    writeFileSync(
      configFile,
      JSON.stringify({
        ingest: { fps: 5 },
        cameras: [
          { id: "entrance", url: server.url("/entrance"), width: 960, height: 540 },
          { id: "yard", url: server.url("/yard"), width: 640, height: 360 },
        ],
      }),
    );
    const config = loadConfig({
      file: configFile,
      env: process.env.VIGIL_MODEL_MIRROR ? { VIGIL_MODEL_MIRROR: process.env.VIGIL_MODEL_MIRROR } : {},
      overrides: { dataDir: path.resolve(".vigil"), "store.path": path.join(dir, "vigil.db") },
    });
    const { events, emit } = collect();
    const controller = new AbortController();
    // Live cameras never end by themselves: stop once the alert is in, or after 30 s.
    const timer = setTimeout(() => controller.abort(), 30_000);
    const watching = (e: Parameters<typeof emit>[0]) => {
      emit(e);
      if (e.type === "alert") setTimeout(() => controller.abort(), 1500);
    };
    const { summary } = await runEmbedded(
      config,
      vision,
      { source: [], watchlist: path.join(dir, "watchlist"), events: "ndjson", signal: controller.signal },
      watching,
    );
    clearTimeout(timer);
    const alerts = ofType(events, "alert");
    expect(alerts.length).toBeGreaterThanOrEqual(1);
    expect(new Set(alerts.map((a) => `${a.personId}@${a.cameraId}`))).toEqual(new Set(["carol@entrance"]));
    const states = (id: string) =>
      ofType(events, "camera")
        .filter((c) => c.cameraId === id)
        .map((c) => c.state);
    expect(states("entrance")).toContain("live");
    expect(states("yard")).toContain("live");
    expect(ofType(events, "face").filter((f) => f.cameraId === "yard")).toEqual([]);
    expect(summary.cameras).toBe(2);
  });
});
