import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MemoryBus } from "../lib/bus/index.ts";
import { loadConfig } from "../lib/config/index.ts";
import { AlertContract, SightingContract, Topics, vectorToBytes } from "../lib/contracts/index.ts";
import { ClipStore, clipKeys } from "../lib/store/clip-store.ts";
import { FolderCropStore, type CropStore } from "../lib/store/crop-store.ts";
import { S3CropStore } from "../lib/store/s3-crop-store.ts";
import { RtspTestServer } from "../lib/testing/rtsp/server.ts";
import { S3Server, s3UnavailableReason } from "../lib/testing/s3/index.ts";
import { CameraManager } from "../services/ingest/camera-manager.ts";
import { resolveCamera } from "../services/ingest/camera.ts";
import { ClipCutter } from "../services/ingest/clips.ts";
import { alertMessage, apiHarness, sighting } from "./api-harness.ts";
import { randomUnit } from "../lib/testing/vectors.ts";
import { tempDir } from "./helpers.ts";

const config = loadConfig({
  env: {},
  overrides: {
    "ingest.fps": 5,
    "ingest.width": 640,
    "ingest.height": 360,
    "ingest.record.keep": "alerts",
    "ingest.record.segmentS": 1,
    "ingest.record.preRollS": 2,
    "ingest.record.postRollS": 2,
    "ingest.record.bufferS": 30,
  },
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** Seconds of video and codec, as ffprobe reads the clip. */
function probe(bytes: Uint8Array) {
  const file = path.join(tempDir("vigil-clip-probe-"), "clip.mp4");
  writeFileSync(file, bytes);
  const r = spawnSync(
    "ffprobe",
    ["-v", "error", "-show_entries", "stream=codec_name:format=duration,format_name", "-of", "json", file],
    { encoding: "utf8" },
  );
  const json = JSON.parse(r.stdout) as {
    streams: { codec_name: string }[];
    format: { duration: string; format_name: string };
  };
  return {
    codec: json.streams[0]?.codec_name,
    seconds: Number(json.format.duration),
    format: json.format.format_name,
  };
}

/** One recorded live camera (its own RTSP server, so a test can take it away) and a cutter over `crops`. */
async function recordedCamera(id: string, crops: CropStore, keep: "alerts" | "sightings" = "alerts") {
  const server = await RtspTestServer.start({ "/cam": { kind: "test", width: 640, height: 360, fps: 25 } });
  const spec = resolveCamera(
    { id, url: server.url("/cam"), loop: false, record: { keep } },
    config.ingest,
    tempDir("vigil-rec-"),
  );
  const manager = new CameraManager([spec], async () => {}, config.ingest).start();
  cleanups.push(async () => {
    await manager.stop();
    await server.kill();
  });
  const logs: string[] = [];
  const cutter = new ClipCutter(manager.recordings(), new ClipStore(crops), {
    scratch: tempDir("vigil-clip-scratch-"),
    log: (m) => logs.push(m),
  });
  // Until it has recorded a few segments.
  for (let i = 0; manager.recordings().get(id)!.segments().length < 3; i++) {
    if (i > 100) throw new Error("the camera recorded nothing");
    await sleep(200);
  }
  return { server, manager, cutter, logs };
}

describe("clips around alerts (real RTSP server, real ffmpeg)", () => {
  it("an alert on vigil.alerts gets a clip from pre-roll to post-roll within post-roll + 5 s, in the crop folder", async () => {
    const crops = new FolderCropStore(path.join(tempDir("vigil-clips-"), "crops"));
    const { cutter } = await recordedCamera("door", crops);
    const bus = new MemoryBus({ capacity: 64 });
    cleanups.push(() => bus.close());
    await cutter.subscribe(bus, "clips-test");
    const ts = Date.now() - 500;
    await bus.publish(Topics.alerts, [
      { key: "default", value: AlertContract.encode(alertMessage("a1", "door", "ann", ts)) },
    ]);
    let info;
    for (let i = 0; !(info = await cutter.clips.info("alerts", "a1", ts)); i++) {
      if (i > 200) throw new Error("no clip");
      await sleep(100);
    }
    const readyAt = Date.now();
    expect(readyAt - (ts + 2000)).toBeLessThanOrEqual(5000);
    expect(info).toMatchObject({
      kind: "alerts",
      id: "a1",
      cameraId: "door",
      ts,
      short: null,
      // The alert's box is measured in the camera's letterboxed frames.
      frame: { width: 640, height: 360 },
    });
    expect(info.start).toBeLessThanOrEqual(ts - 2000);
    expect(info.end).toBeGreaterThanOrEqual(ts + 2000);
    const video = (await cutter.clips.video("alerts", "a1", ts))!;
    expect(video.length).toBe(info.bytes);
    const probed = probe(video);
    expect(probed.codec).toBe("h264");
    expect(probed.format).toMatch(/mp4/);
    expect(probed.seconds).toBeGreaterThan(3.5);
    // Redelivered: the stored clip stands, nothing is cut again.
    expect(await cutter.cut(cutter.forAlert({ alertId: "a1", cameraId: "door", ts })!)).toEqual({
      clip: info,
    });
  }, 90_000);

  it("a camera that drops mid-clip gives a clip that ends where its video ends, and says so", async () => {
    const crops = new FolderCropStore(path.join(tempDir("vigil-clips-"), "crops"));
    const { cutter, server } = await recordedCamera("yard", crops);
    const ts = Date.now();
    const request = { ...cutter.forAlert({ alertId: "a2", cameraId: "yard", ts })!, to: ts + 8000 };
    const cutting = cutter.cut(request);
    await sleep(1500);
    await server.kill();
    const outcome = await cutting;
    if (!("clip" in outcome)) throw new Error(`no clip: ${outcome.none}`);
    expect(outcome.clip.short).toMatch(/video stops at/);
    expect(outcome.clip.end).toBeLessThan(ts + 8000 - 1000);
    expect(probe((await cutter.clips.video("alerts", "a2", ts))!).seconds).toBeGreaterThan(2);
  }, 90_000);

  it("an alert from before the recording gets no clip, and the reason", async () => {
    const crops = new FolderCropStore(path.join(tempDir("vigil-clips-"), "crops"));
    const { cutter } = await recordedCamera("gate", crops);
    const ts = Date.now() - 3_600_000;
    const outcome = await cutter.cut(cutter.forAlert({ alertId: "old", cameraId: "gate", ts })!);
    expect(outcome).toEqual({ none: expect.stringMatching(/the recording no longer reaches back to/) });
    if (!("none" in outcome)) throw new Error("a clip from before the recording");
    // Kept, so a reader is told why rather than left guessing; asked again, the same answer.
    expect(await cutter.clips.info("alerts", "old", ts)).toMatchObject({ bytes: 0, none: outcome.none });
    expect(await cutter.cut(cutter.forAlert({ alertId: "old", cameraId: "gate", ts })!)).toEqual(outcome);
    // Sightings are not kept on this camera (keep: alerts).
    expect(cutter.forSighting({ sightingId: "s", cameraId: "gate", startTs: ts, endTs: ts })).toBeUndefined();
  }, 90_000);
});

describe("clips of sightings (record.keep: sightings; real RTSP server, real ffmpeg)", () => {
  it("a sighting on vigil.sightings gets a clip from pre-roll before its first face to post-roll after its last, within post-roll + 5 s of its close, served seekable by the API", async () => {
    const dir = path.join(tempDir("vigil-clips-"), "crops");
    const crops = new FolderCropStore(dir);
    const { cutter } = await recordedCamera("hall", crops, "sightings");
    const bus = new MemoryBus({ capacity: 64 });
    cleanups.push(() => bus.close());
    await cutter.subscribe(bus, "clips-test");
    // A pass of 3 s that has just closed, once the recording reaches back to its pre-roll.
    await sleep(3000);
    const closedAt = Date.now();
    const s = { ...sighting("s-hall", "hall", closedAt - 3000, randomUnit(1, 16)), endTs: closedAt };
    const { id, vector, crop, ...header } = s;
    await bus.publish(Topics.sightings, [
      {
        key: "hall",
        value: SightingContract.encode({
          ...header,
          sightingId: id,
          dim: 16,
          vector: vectorToBytes(vector),
          crop,
        }),
      },
    ]);
    let info;
    for (let i = 0; !(info = await cutter.clips.info("sightings", id, s.startTs)); i++) {
      if (i > 200) throw new Error("no clip of the sighting");
      await sleep(100);
    }
    expect(Date.now() - (closedAt + 2000)).toBeLessThanOrEqual(5000);
    expect(info).toMatchObject({ kind: "sightings", cameraId: "hall", short: null, from: s.startTs - 2000 });
    expect(info.start).toBeLessThanOrEqual(s.startTs - 2000);
    expect(info.end).toBeGreaterThanOrEqual(closedAt + 2000);
    // The API on the same crop store serves it, and a <video>'s range request reads part of it.
    const h = await apiHarness({
      "store.crops.dir": dir,
      cameras: [{ id: "hall", url: "rtsp://127.0.0.1:1/hall", record: { keep: "sightings" } }],
    });
    cleanups.push(() => h.close());
    await h.store.addSightings([s]);
    const op = (url: string, headers: Record<string, string> = {}) =>
      h.app.inject({ method: "GET", url, headers: { ...h.auth("operator"), ...headers } });
    expect((await op(`/v1/sightings/${id}`)).json().clipUrl).toBe(`/v1/sightings/${id}/clip`);
    const whole = await op(`/v1/sightings/${id}/clip`);
    expect(whole.statusCode).toBe(200);
    expect(whole.headers["vigil-clip-start"]).toBe(String(info.start));
    expect(probe(whole.rawPayload).seconds).toBeGreaterThan(6.5);
    const part = await op(`/v1/sightings/${id}/clip`, { range: "bytes=0-1023" });
    expect(part.statusCode).toBe(206);
    expect(part.headers["content-range"]).toBe(`bytes 0-1023/${whole.rawPayload.length}`);
  }, 90_000);
});

const s3Missing = s3UnavailableReason();
if (s3Missing) console.log(`skipping clips in S3: ${s3Missing}`);
describe.skipIf(!!s3Missing)("clips in an S3 bucket (s3s-fs)", () => {
  it("stores, reads back and purges clips by day through the crop store", async () => {
    const s3 = await S3Server.start();
    cleanups.push(() => s3.destroy());
    const crops = new S3CropStore({
      bucket: await s3.createBucket(),
      prefix: "vigil/",
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey },
    });
    cleanups.push(() => crops.close());
    const clips = new ClipStore(crops);
    const day = 86_400_000;
    const now = Date.UTC(2026, 11, 6, 12);
    const video = Uint8Array.of(0, 0, 0, 0x18, 0x66, 0x74, 0x79, 0x70);
    for (const [id, ts] of [
      ["old", now - 10 * day],
      ["new", now - day / 2],
    ] as const)
      await clips.put(
        {
          kind: "alerts",
          id,
          cameraId: "door",
          ts,
          start: ts - 2000,
          end: ts + 2000,
          from: ts - 2000,
          to: ts + 2000,
          short: null,
        },
        video,
      );
    expect(await clips.video("alerts", "new", now - day / 2)).toEqual(video);
    expect(clipKeys("alerts", "new", now - day / 2).video).toBe("clips/alerts/2026-12-06/new.mp4");
    // Alerts kept 7 days: the 10-day-old clip goes, the new one stays.
    expect(await clips.purgeBefore("alerts", now - 7 * day)).toBe(2);
    expect(await clips.info("alerts", "old", now - 10 * day)).toBeUndefined();
    expect(await clips.info("alerts", "new", now - day / 2)).toMatchObject({
      id: "new",
      bytes: video.length,
    });
  }, 60_000);
});
