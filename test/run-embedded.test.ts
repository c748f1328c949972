import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync, copyFileSync } from "node:fs";
import path from "node:path";
import sharp from "sharp";
import { generateVideo } from "../lib/media/generate.ts";
import { runEmbedded } from "../cli/commands/run.ts";
import { cropLargestFace, samplePhotos } from "../lib/media/sample-media.ts";
import {
  collect,
  ofType,
  runAliceScene,
  sharedData,
  sharedVision,
  skipReason,
  tempDir,
  testConfig,
} from "./helpers.ts";

const config = testConfig({ "ingest.fps": 5 });

describe("vigil run, on media generated here (always runs)", () => {
  it("alerts on a watchlisted person in a video made from photos, once per camera within the cool-down", async () => {
    const vision = await sharedVision();
    // photo 1 shown twice with other photos between: the second appearance falls inside the cool-down
    const { events, summary, alerts } = await runAliceScene(config, vision, [0, 1, 2, 0]);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ personId: "alice", cameraId: "cam-1" });
    expect(alerts[0]!.score).toBeGreaterThanOrEqual(alerts[0]!.threshold);
    expect(summary.frames).toBeGreaterThanOrEqual(22); // 4.8 s at 5 fps
    expect(summary.faces).toBeGreaterThan(10);
    expect(ofType(events, "camera").map((c) => c.state)).toEqual(["connecting", "live", "ended"]);
  });

  it("processes a face-free generated video without faces or alerts, frame count as sampled", async () => {
    const vision = await sharedVision();
    const dir = tempDir();
    const video = path.join(dir, "testsrc.mp4");
    generateVideo("testsrc2=size=640x360:rate=25:duration=3", video);
    const { events, emit } = collect();
    const { summary } = await runEmbedded(config, vision, { source: [video], events: "ndjson" }, emit);
    expect(summary.frames).toBe(15);
    expect(summary.faces).toBe(0);
    expect(ofType(events, "alert")).toEqual([]);
    expect(ofType(events, "face")).toEqual([]);
  });
});

describe("vigil run, bad input", () => {
  it("reports an unreadable video as a camera error naming the file, and keeps going", async () => {
    const vision = await sharedVision();
    const dir = tempDir();
    const bogus = path.join(dir, "not-a-video.mp4");
    writeFileSync(bogus, "this is text, not H.264");
    const good = path.join(dir, "ok.mp4");
    generateVideo("testsrc2=size=320x240:rate=25:duration=1", good);
    const { events, emit } = collect();
    const { summary, results } = await runEmbedded(
      config,
      vision,
      { source: [bogus, good], events: "ndjson" },
      emit,
    );
    const error = ofType(events, "camera").find((c) => c.state === "error");
    expect(error?.cameraId).toBe("cam-1");
    expect(error?.lastError).toContain("not-a-video.mp4");
    expect(results.map((r) => r.state)).toEqual(["error", "ended"]);
    expect(summary.frames).toBe(5);
    expect(summary.cameraErrors).toBe(1);
  });

  it("exits non-zero from the CLI when every camera failed, naming the file", () => {
    const bogus = path.join(tempDir(), "broken.mp4");
    writeFileSync(bogus, "this is text, not H.264");
    const run = spawnSync(process.execPath, ["bin/vigil.js", "run", "--source", bogus], {
      encoding: "utf8",
      env: { ...process.env, VIGIL_STORE__PATH: path.join(tempDir(), "vigil.db") },
      timeout: 120_000,
    });
    expect(run.status).toBe(2);
    expect(run.stdout).toContain("broken.mp4");
    expect(run.stderr).toContain("every camera failed");
  });

  it("rejects watchlist files that are not images, show no face, or show several faces, naming each file", async () => {
    const vision = await sharedVision();
    const photos = await samplePhotos(path.resolve(".vigil/cache"));
    const dir = tempDir();
    const person = path.join(dir, "watchlist", "bob");
    mkdirSync(person, { recursive: true });
    writeFileSync(path.join(person, "notes.txt"), "not an image");
    await sharp({ create: { width: 200, height: 200, channels: 3, background: { r: 90, g: 140, b: 200 } } })
      .png()
      .toFile(path.join(person, "sky.png"));
    copyFileSync(photos[1]!, path.join(person, "group.jpg"));
    await cropLargestFace(vision, photos[2]!, path.join(person, "good.jpg"));
    const video = path.join(dir, "v.mp4");
    generateVideo("testsrc2=size=320x240:rate=25:duration=1", video);
    const { events, emit } = collect();
    await runEmbedded(
      config,
      vision,
      { source: [video], watchlist: path.join(dir, "watchlist"), events: "ndjson" },
      emit,
    );
    const outcome = Object.fromEntries(ofType(events, "enrol").map((e) => [path.basename(e.file), e]));
    expect(outcome["notes.txt"]).toMatchObject({ ok: false, reason: expect.stringMatching(/^not an image/) });
    expect(outcome["sky.png"]).toMatchObject({ ok: false, reason: "no face found" });
    expect(outcome["group.jpg"]).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/^\d+ faces found/),
    });
    expect(outcome["good.jpg"]).toMatchObject({ ok: true });
  });

  it("rejects a missing source before starting", async () => {
    const vision = await sharedVision();
    await expect(
      runEmbedded(config, vision, { source: ["/nonexistent/clip.mp4"], events: "ndjson" }, () => {}),
    ).rejects.toThrow(/source \/nonexistent\/clip\.mp4 does not exist/);
  });
});

const talkingA = sharedData("video", "talking-d0.mp4");
const talkingB = sharedData("video", "talking-d3.mp4");
const missing =
  !talkingA || !talkingB
    ? skipReason("real-video end-to-end test", "../shared/data/video/talking-d0.mp4, talking-d3.mp4")
    : undefined;

describe.skipIf(!!missing)("vigil run, on real face videos from ../shared/data/video", () => {
  it("enrols a person from one frame of their clip, alerts on their clip and stays silent on another person's", async () => {
    const vision = await sharedVision();
    const dir = tempDir();
    const still = path.join(dir, "still.jpg");
    // A frame from late in clip A is the watchlist photo; the run sees all of both clips.
    execFileSync("ffmpeg", [
      "-y",
      "-loglevel",
      "error",
      "-sseof",
      "-1.5",
      "-i",
      talkingA!,
      "-frames:v",
      "1",
      still,
    ]);
    await cropLargestFace(vision, still, path.join(dir, "watchlist", "speaker-d0", "still.jpg"));
    const { events, emit } = collect();
    await runEmbedded(
      config,
      vision,
      { source: [talkingA!, talkingB!], watchlist: path.join(dir, "watchlist"), events: "ndjson" },
      emit,
    );
    const alerts = ofType(events, "alert");
    expect(alerts.map((a) => `${a.personId}@${a.cameraId}`)).toEqual(["speaker-d0@cam-1"]);
    const faces = ofType(events, "face");
    const ended = ofType(events, "camera").filter((c) => c.state === "ended");
    const framesIn = ended.reduce((n, c) => n + c.framesIn, 0);
    expect(ended.find((c) => c.cameraId === "cam-1")!.framesIn).toBeGreaterThan(10);
    const summary = ofType(events, "summary")[0]!;
    // head-and-shoulders clips: a face passes the quality gate in most sampled frames…
    expect(summary.faces).toBeGreaterThan(framesIn * 0.6);
    // …but one speaker who barely moves is embedded again only every 1.5 s or on a clearly better look.
    expect(summary.embeddedFaces).toBe(faces.length);
    expect(faces.length).toBeLessThan(Number(summary.faces) * 0.6);
    expect(faces.filter((f) => f.cameraId === "cam-1").length).toBeGreaterThan(0);
    expect(faces.filter((f) => f.cameraId === "cam-2").length).toBeGreaterThan(0);
  });
});
