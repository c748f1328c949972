import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RetentionScheduler } from "../lib/runtime/retention.ts";
import { ClipStore } from "../lib/store/clip-store.ts";
import { openCropStore } from "../lib/store/open-store.ts";
import { byteRange } from "../services/api/routes/clips.ts";
import { randomUnit } from "../lib/testing/vectors.ts";
import { apiHarness, sighting, type Harness } from "./api-harness.ts";
import { tempDir } from "./helpers.ts";

const T = Date.UTC(2026, 11, 6, 10);
const alert = (id: string, cameraId: string, ts = T) => ({
  id,
  watchlistId: "default",
  personId: "ann",
  personName: "Ann",
  cameraId,
  ts,
  score: 0.8,
  threshold: 0.5,
  modelId: "m1",
  faceId: `${cameraId}:${ts}:0`,
  box: { x: 1, y: 2, width: 30, height: 30 },
  crop: Uint8Array.of(0xff, 0xd8),
});

/** A real 2-second H.264 MP4, as the cutter stores them (faststart). */
function mp4(): Uint8Array {
  const file = path.join(tempDir("vigil-api-clip-"), "c.mp4");
  execFileSync("ffmpeg", [
    ...["-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10:duration=2"],
    ...["-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", file],
  ]);
  return new Uint8Array(readFileSync(file));
}

describe("GET /v1/alerts/:id/clip and /v1/sightings/:id/clip", () => {
  let h: Harness;
  let clips: ClipStore;
  const video = mp4();
  beforeAll(async () => {
    h = await apiHarness({
      "store.crops.dir": path.join(tempDir("vigil-api-clips-"), "crops"),
      "store.retentionDays": 7,
      "store.alertRetentionDays": 14,
      cameras: [
        { id: "door", url: "rtsp://127.0.0.1:1/door", record: { keep: "sightings" } },
        { id: "yard", url: "rtsp://127.0.0.1:1/yard" },
        // Asked to record, but a file: ingest records nothing of it.
        { id: "lobby", url: "/media/lobby.mp4", record: { keep: "alerts" } },
        { id: "hall", url: "rtsp://127.0.0.1:1/hall", record: { keep: "all" } },
      ],
    });
    clips = new ClipStore(openCropStore(h.config));
    await h.store.addAlerts([
      alert("a-clip", "door"),
      alert("a-later", "door"),
      alert("a-gap", "door"),
      alert("a-yard", "yard"),
      alert("a-lobby", "lobby"),
    ]);
    await clips.put(
      {
        kind: "alerts",
        id: "a-clip",
        cameraId: "door",
        ts: T,
        start: T - 5200,
        end: T + 5100,
        from: T - 5000,
        to: T + 5000,
        short: null,
        frame: { width: 1280, height: 720 },
      },
      video,
    );
    await clips.putNone(
      { kind: "alerts", id: "a-gap", cameraId: "door", ts: T, from: T - 5000, to: T + 5000 },
      "no video of camera door was recorded between …",
    );
  });
  afterAll(async () => h.close());
  const get = (url: string, headers: Record<string, string> = {}) =>
    h.app.inject({ method: "GET", url, headers: { ...h.auth("viewer"), ...headers } });

  it("names the clip in alerts and sightings of recorded cameras (clipUrl), null elsewhere", async () => {
    expect((await get("/v1/alerts/a-clip")).json().clipUrl).toBe("/v1/alerts/a-clip/clip");
    expect((await get("/v1/alerts/a-yard")).json().clipUrl).toBeNull();
    expect((await get("/v1/alerts/a-lobby")).json().clipUrl).toBeNull();
    await h.store.addSightings([
      { ...sighting("s-door", "door", T, randomUnit(1, 16)) },
      { ...sighting("s-yard", "yard", T, randomUnit(2, 16)) },
      { ...sighting("s-hall", "hall", T, randomUnit(3, 16)) },
    ]);
    const op = (url: string) => h.app.inject({ method: "GET", url, headers: h.auth("operator") });
    expect((await op("/v1/sightings/s-door")).json().clipUrl).toBe("/v1/sightings/s-door/clip");
    expect((await op("/v1/sightings/s-yard")).json().clipUrl).toBeNull();
    expect((await op("/v1/sightings/s-hall")).json().clipUrl).toBe("/v1/sightings/s-hall/clip");
  });

  it("serves the whole clip, or the byte range a <video> asks for, with its wall-clock span", async () => {
    const whole = await get("/v1/alerts/a-clip/clip");
    expect(whole.statusCode).toBe(200);
    expect(whole.headers["content-type"]).toBe("video/mp4");
    expect(whole.headers["accept-ranges"]).toBe("bytes");
    expect(whole.headers["vigil-clip-start"]).toBe(String(T - 5200));
    expect(whole.headers["vigil-clip-frame"]).toBe("1280x720");
    expect(whole.rawPayload).toEqual(Buffer.from(video));
    const part = await get("/v1/alerts/a-clip/clip", { range: "bytes=100-199" });
    expect(part.statusCode).toBe(206);
    expect(part.headers["content-range"]).toBe(`bytes 100-199/${video.length}`);
    expect(part.rawPayload).toEqual(Buffer.from(video.subarray(100, 200)));
    const tail = await get("/v1/alerts/a-clip/clip", { range: "bytes=-10" });
    expect(tail.rawPayload).toEqual(Buffer.from(video.subarray(video.length - 10)));
    expect((await get("/v1/alerts/a-clip/clip", { range: `bytes=${video.length}-` })).statusCode).toBe(416);
    // Every request is audited, with the range it read.
    const audit = await h.apiStore.listAudit({ limit: 50 });
    expect(audit.items.some((e) => e.action === "export.alert-clip" && e.target === "a-clip")).toBe(true);
  });

  it("says why there is no clip: not cut yet, nothing recorded, camera not recorded, the alert expired", async () => {
    const reason = async (url: string) => {
      const res = await get(url);
      expect(res.statusCode).toBe(404);
      return res.json().message as string;
    };
    expect(await reason("/v1/alerts/a-later/clip")).toMatch(/not yet|no clip of a-later yet/);
    expect(await reason("/v1/alerts/a-gap/clip")).toMatch(/no video of camera door was recorded/);
    expect(await reason("/v1/alerts/a-yard/clip")).toMatch(/camera yard is not recorded/);
    expect(await reason("/v1/alerts/a-lobby/clip")).toMatch(/camera lobby is a file, not a live camera/);
    // Retention takes the clip with its alert (here 30 days on, alerts kept 14).
    const retention = new RetentionScheduler(h.store, {
      retentionDays: 7,
      alertRetentionDays: 14,
      everyS: 3600,
      now: () => T + 30 * 86_400_000,
      clips,
    });
    const purged = await retention.tick();
    expect(purged).toMatchObject({ alerts: 5, sightings: 3, clips: 3 }); // a-clip's video and info, a-gap's info
    expect(await clips.info("alerts", "a-clip", T)).toBeUndefined();
    expect(await reason("/v1/alerts/a-clip/clip")).toMatch(
      /no alert a-clip: .*older than the 14 days such records are kept and retention has deleted it, with its clip/,
    );
  });

  it("reads ranges as browsers send them", () => {
    expect(byteRange(undefined, 100)).toBeUndefined();
    expect(byteRange("bytes=0-", 100)).toEqual({ start: 0, end: 99 });
    expect(byteRange("bytes=10-1000", 100)).toEqual({ start: 10, end: 99 });
    expect(byteRange("bytes=-0", 100)).toBe("unsatisfiable");
    expect(byteRange("bytes=5-2", 100)).toBe("unsatisfiable");
    expect(byteRange("bytes=0-1,5-6", 100)).toBeUndefined();
  });
});
