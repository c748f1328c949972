import { describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import path from "node:path";
import { runEmbedded } from "../cli/commands/run.ts";
import { buildTimeline } from "../lib/history/timeline.ts";
import { generateImage } from "../lib/media/generate.ts";
import { samplePhotos, slideshowVideo, cropLargestFace } from "../lib/media/sample-media.ts";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import { thresholdFor } from "../lib/vision/models/calibration.ts";
import { embedSingleFace } from "../lib/watchlist/photo.ts";
import type { VigilEvent } from "../lib/events/events.ts";
import { collect, ofType, sharedData, sharedVision, skipReason, tempDir, testConfig } from "./helpers.ts";

const bbt = sharedData("faces-bbt");
const video = sharedData("video");
const missing =
  !bbt || !video
    ? skipReason("watchlist end-to-end test on real faces", "../shared/data/faces-bbt and video/")
    : undefined;

/** Who is in each group photo (looked at by a person), in slideshow order. */
const IN_PHOTO = [
  ["raj", "leonard", "howard", "sheldon"],
  ["leonard", "sheldon"],
  ["sheldon", "howard", "penny", "raj", "leonard"],
  ["amy", "raj", "leonard", "penny", "sheldon", "bernadette"],
  ["raj", "penny", "sheldon", "leonard", "howard"],
];

describe.skipIf(!!missing)("watchlist alerts on real faces (../shared/data)", () => {
  it("enrols the faces-bbt people, alerts with the right names on the group photos, once per cool-down, and stays silent on strangers", async () => {
    const vision = await sharedVision();
    const dir = tempDir();
    const groups = path.join(dir, "groups.mp4");
    await slideshowVideo(
      [1, 2, 3, 4, 5].map((i) => path.join(bbt!, `bbt${i}.jpg`)),
      groups,
      { secondsEach: 2 },
    );
    const config = testConfig({ "ingest.fps": 5 });
    const { events, emit } = collect();
    await runEmbedded(
      config,
      vision,
      {
        source: [
          groups,
          path.join(video!, "crowd-1080p.mp4"),
          path.join(video!, "talking-d9.mp4"),
          path.join(video!, "WDA_KatieHill_000.mp4"),
        ],
        watchlist: bbt!,
        events: "ndjson",
      },
      emit,
    );
    const enrolled = ofType(events, "enrol");
    expect(enrolled.filter((e) => e.ok).length).toBeGreaterThanOrEqual(35);
    for (const e of enrolled.filter((x) => !x.ok)) expect(e.reason).toBeTruthy();
    const alerts = ofType(events, "alert");
    // strangers: the crowd (cam-2) and two talking heads (cam-3, cam-4) raise nothing
    expect(alerts.filter((a) => a.cameraId !== "cam-1")).toEqual([]);
    const faces = ofType(events, "face").filter((f) => f.cameraId === "cam-1");
    const t0 = Math.min(...faces.map((f) => f.ts));
    for (const a of alerts) {
      const photo = Math.floor((a.ts - t0) / 2000);
      expect(IN_PHOTO[photo], `${a.personId} alerted during photo ${photo + 1}`).toContain(a.personId);
    }
    // every main character is in several photos; the cool-down (30 s) allows one alert each
    const names = alerts.map((a) => a.personId);
    expect(new Set(names).size).toBe(names.length);
    expect(new Set(names).size).toBeGreaterThanOrEqual(6);
    expect(names).not.toContain("stuart");
  });
});

describe("history search and person timeline across cameras (always runs)", () => {
  it("finds a person on two cameras at different times, in order, with camera and time filters", async () => {
    const vision = await sharedVision();
    const dir = tempDir();
    const photos = await samplePhotos(path.resolve(".vigil/cache"));
    const config = testConfig({ "ingest.fps": 5 });
    // The query person is alone in a tight crop; door shows them first, lobby 6 s later (after an empty scene).
    const person = path.join(dir, "person.jpg");
    await cropLargestFace(vision, photos[0]!, person, 0.9);
    const blank = path.join(dir, "blank.png");
    generateImage("color=c=gray:s=640x480", blank);
    const door = path.join(dir, "door.mp4");
    const lobby = path.join(dir, "lobby.mp4");
    await slideshowVideo([person, blank], door, { secondsEach: 2, width: 640, height: 480 });
    await slideshowVideo([blank, blank, blank, person], lobby, { secondsEach: 2, width: 640, height: 480 });
    const storeFile = path.join(dir, "vigil.db");
    const cams = {
      cameras: [
        { id: "door", url: door },
        { id: "lobby", url: lobby },
      ],
    };
    const withCams = testConfig({ "ingest.fps": 5, "store.path": storeFile, cameras: cams.cameras });
    const { emit } = collect();
    await runEmbedded(withCams, vision, { source: [], events: "ndjson" }, emit);

    const query = await embedSingleFace(vision, person, person);
    if (!query.ok) throw new Error(query.reason);
    const store = new SqliteStore(storeFile);
    const hits = await store.search({ modelId: query.modelId, vector: query.vector, top: 10 });
    const threshold = thresholdFor(query.modelId, config);
    const same = hits.filter((h) => h.score >= threshold);
    expect(new Set(same.map((h) => h.sighting.cameraId))).toEqual(new Set(["door", "lobby"]));
    const doorTs = same.find((h) => h.sighting.cameraId === "door")!.sighting.startTs;
    const lobbyTs = same.find((h) => h.sighting.cameraId === "lobby")!.sighting.startTs;
    expect(lobbyTs - doorTs).toBeGreaterThan(4000);

    const onlyLobby = await store.search({
      modelId: query.modelId,
      vector: query.vector,
      cameras: ["lobby"],
      top: 10,
    });
    expect(onlyLobby.every((h) => h.sighting.cameraId === "lobby")).toBe(true);
    const beforeLobby = await store.search({
      modelId: query.modelId,
      vector: query.vector,
      until: lobbyTs - 1,
      top: 10,
    });
    expect(beforeLobby.filter((h) => h.score >= threshold).map((h) => h.sighting.cameraId)).toEqual(["door"]);

    const visits = buildTimeline(
      same.map((h) => ({ ...h.sighting, score: h.score })),
      60_000,
    );
    expect(visits.map((v) => v.cameraId)).toEqual(["door", "lobby"]);
    store.close();
    expect(readdirSync(dir)).toContain("vigil.db");
  });
});

/** The `vigil` command in its own process, on the given store file, as an operator in a second terminal. */
function vigil(args: string[], storeFile: string): Promise<void> {
  const child = spawn(process.execPath, ["bin/vigil.js", ...args], {
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, VIGIL_STORE__PATH: storeFile, VIGIL_DATA_DIR: path.resolve(".vigil") },
  });
  return new Promise((resolve, reject) =>
    child.on("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`vigil ${args[0]} exited ${code}`)),
    ),
  );
}

async function until(check: () => boolean, timeoutMs: number, what: string) {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("changing the watchlist while `vigil run` is live (always runs)", () => {
  it("a person enrolled from another process alerts within seconds, and stops once removed", async () => {
    const vision = await sharedVision();
    const dir = tempDir();
    const photos = await samplePhotos(path.resolve(".vigil/cache"));
    const person = path.join(dir, "ann.jpg");
    await cropLargestFace(vision, photos[0]!, person);
    const clip = path.join(dir, "door.mp4");
    await slideshowVideo([person], clip, { secondsEach: 4, width: 640, height: 480 });
    const storeFile = path.join(dir, "vigil.db");
    const config = testConfig({
      "ingest.fps": 5,
      "store.path": storeFile,
      // Alerts repeat every second while she is enrolled, so the moment they stop is visible.
      "match.alertCooldownS": 1,
      cameras: [{ id: "door", url: clip, loop: true }],
    });
    const events: { event: VigilEvent; at: number }[] = [];
    const alerts = (after = 0) =>
      events.filter((x) => x.event.type === "alert" && x.at > after).map((x) => x.event);
    const abort = new AbortController();
    const run = runEmbedded(config, vision, { source: [], events: "ndjson", signal: abort.signal }, (event) =>
      events.push({ event, at: Date.now() }),
    );
    try {
      await until(() => events.some((x) => x.event.type === "face"), 60_000, "first face");
      await new Promise((r) => setTimeout(r, 1500));
      expect(alerts()).toEqual([]);

      await vigil(["enroll", "--person", "ann", person], storeFile);
      const enrolledAt = Date.now();
      await until(() => alerts(enrolledAt).length > 0, 10_000, "an alert after enrolling");
      const first = events.find((x) => x.event.type === "alert")!;
      expect(first.event).toMatchObject({ personId: "ann", cameraId: "door" });
      expect(first.at - enrolledAt).toBeLessThan(5000);

      await vigil(["remove", "--person", "ann"], storeFile);
      const removedAt = Date.now();
      await new Promise((r) => setTimeout(r, 4000));
      // Frames already on their way when she was removed may still alert; nothing later does.
      expect(alerts(removedAt + 2500)).toEqual([]);
    } finally {
      abort.abort();
      await run;
    }
  });
});
