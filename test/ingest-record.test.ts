import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, readdirSync, readFileSync, utimesSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../lib/config/index.ts";
import { CameraStatusContract, Topics, type CameraStatusMessage } from "../lib/contracts/index.ts";
import { generateVideo } from "../lib/media/generate.ts";
import {
  CameraRecording,
  joinSegments,
  listSegments,
  pruneSegments,
  recordingOutput,
  segmentListSize,
  segmentsBetween,
} from "../lib/media/recording.ts";
import type { Emit } from "../lib/runtime/stage.ts";
import { RtspTestServer } from "../lib/testing/rtsp/server.ts";
import { CameraManager } from "../services/ingest/camera-manager.ts";
import { recordRoot, resolveCamera } from "../services/ingest/camera.ts";
import { gapsIn, recordingCommand } from "../cli/commands/recording.ts";
import { openApiStore } from "../lib/store/open-store.ts";
import { ClipCutter } from "../services/ingest/clips.ts";
import { ClipStore } from "../lib/store/clip-store.ts";
import { FolderCropStore } from "../lib/store/crop-store.ts";

const HOUR_MS = 3_600_000;
import { tempDir } from "./helpers.ts";
import { benchIngest } from "../cli/commands/bench-ingest.ts";

const config = loadConfig({
  env: {},
  overrides: {
    "ingest.fps": 5,
    "ingest.width": 640,
    "ingest.height": 360,
    "ingest.statusEveryS": 1,
    "ingest.record.keep": "alerts",
    "ingest.record.segmentS": 1,
    "ingest.record.bufferS": 10,
  },
});

const servers: RtspTestServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.kill();
});

function statuses() {
  const seen: CameraStatusMessage[] = [];
  const emit = async (e: Emit) => {
    if (e.topic === Topics.cameraStatus) seen.push(CameraStatusContract.decode(e.value));
  };
  return { seen, emit };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The clip's video stream as ffprobe reads it. */
function probe(file: string) {
  const r = spawnSync(
    "ffprobe",
    [
      "-v",
      "error",
      "-select_streams",
      "v:0",
      "-show_entries",
      "stream=codec_name:format=duration",
      "-of",
      "json",
      file,
    ],
    { encoding: "utf8" },
  );
  const json = JSON.parse(r.stdout) as { streams: { codec_name: string }[]; format: { duration: string } };
  return { codec: json.streams[0]?.codec_name, durationS: Number(json.format.duration) };
}

describe("rolling recording at ingest (real RTSP server, real ffmpeg)", () => {
  it("copies a live H.264 camera into segments that cover wall-clock time, and joins them into a playable clip", async () => {
    const server = await RtspTestServer.start({ "/cam": { kind: "test", width: 640, height: 360, fps: 25 } });
    servers.push(server);
    const root = tempDir("vigil-rec-");
    const spec = resolveCamera({ id: "door", url: server.url("/cam"), loop: false }, config.ingest, root);
    expect(spec.record).toMatchObject({ keep: "alerts", segmentS: 1, dir: path.join(root, "door") });
    const { seen, emit } = statuses();
    const manager = new CameraManager([spec], emit, config.ingest).start();
    const t0 = Date.now();
    try {
      await sleep(6500);
      const recording = manager.recordings().get("door")!;
      const segments = recording.segments();
      const t1 = Date.now();
      expect(segments.length).toBeGreaterThanOrEqual(3);
      // Their wall-clock spans follow one another and fall within the run.
      for (const [i, s] of segments.entries()) {
        expect(s.end - s.start).toBeGreaterThan(500);
        expect(s.start).toBeGreaterThan(t0 - 1000);
        expect(s.end).toBeLessThanOrEqual(t1 + 50);
        if (i > 0) expect(Math.abs(s.start - segments[i - 1]!.end)).toBeLessThan(400);
      }
      const wanted = segmentsBetween(segments, t1 - 3000, t1 - 1500);
      expect(wanted.length).toBeGreaterThanOrEqual(1);
      const clip = await joinSegments(wanted, tempDir("vigil-clip-"));
      const file = path.join(tempDir("vigil-clip-out-"), "clip.mp4");
      (await import("node:fs")).writeFileSync(file, clip.data);
      const probed = probe(file);
      expect(probed.codec).toBe("h264");
      expect(probed.durationS * 1000).toBeGreaterThan((clip.end - clip.start) * 0.7);
      expect(probed.durationS * 1000).toBeLessThan((clip.end - clip.start) * 1.3 + 200);
      expect(seen.filter((s) => s.state === "live").at(-1)?.recording).toEqual({ on: true, reason: null });
      // Pruning keeps what is pinned and deletes what is older than the buffer.
      recording.pin(wanted);
      pruneSegments(spec.record!.dir, Date.now() + 60_000, (f) => wanted.some((w) => w.file === f));
      const left = readdirSync(spec.record!.dir).filter((n) => n.endsWith(".ts"));
      for (const w of wanted) expect(existsSync(w.file)).toBe(true);
      // At most the segment being written besides the pinned ones.
      expect(left.length).toBeLessThanOrEqual(wanted.length + 1);
    } finally {
      await manager.stop();
    }
  }, 60_000);

  it("names only the newest segments in a session's list, however long the camera stays connected", () => {
    // 40 one-second GOPs copied as fast as ffmpeg reads them: a long-connected camera in a moment.
    const source = path.join(tempDir("vigil-rec-src-"), "long.mp4");
    generateVideo("testsrc2=size=320x240:rate=10:duration=40", source, { gop: 10 });
    const spec = { dir: tempDir("vigil-rec-"), segmentS: 1, bufferS: 10, preRollS: 2, postRollS: 2 } as const;
    const cap = segmentListSize(spec);
    expect(cap).toBe(18);
    const out = recordingOutput({ ...spec, keep: "alerts", keepDays: 1 }, "s1");
    const r = spawnSync("ffmpeg", ["-v", "error", "-i", source, ...out.options, out.target], {
      encoding: "utf8",
    });
    expect(r.status, r.stderr).toBe(0);
    const files = readdirSync(spec.dir).filter((n) => n.endsWith(".ts"));
    expect(files.length).toBeGreaterThanOrEqual(38);
    const lines = readFileSync(path.join(spec.dir, "s1.csv"), "utf8").trim().split("\n");
    expect(lines).toHaveLength(cap);
    // The newest ones, in order, and nothing half written left beside the list.
    const listed = listSegments(spec.dir).map((s) => path.basename(s.file));
    expect(listed).toEqual(files.sort().slice(-cap));
    expect(readdirSync(spec.dir).filter((n) => n.endsWith(".tmp"))).toEqual([]);
    // What fell off the list goes with the next prune once it is older than the buffer.
    const removed = pruneSegments(spec.dir, Date.now() + 1000, () => false);
    expect(removed).toBe(files.length);
    expect(readdirSync(spec.dir)).toEqual([]);
  });

  it("keep: all moves what leaves the buffer into hour folders, vigil recording cuts any span of it, and whole hours expire after keepDays", async () => {
    const dataDir = tempDir("vigil-rec-all-");
    const allConfig = loadConfig({
      env: {},
      overrides: {
        dataDir,
        "store.path": path.join(dataDir, "vigil.db"),
        cameras: [
          {
            id: "door",
            url: "rtsp://127.0.0.1:1/door",
            record: { keep: "all", keepDays: 1, segmentS: 1, bufferS: 10 },
          },
        ],
      },
    });
    const spec = resolveCamera(allConfig.cameras[0]!, allConfig.ingest, recordRoot(allConfig)).record!;
    const source = path.join(tempDir("vigil-rec-src-"), "all.mp4");
    generateVideo("testsrc2=size=320x240:rate=10:duration=12", source, { gop: 10 });
    const out = recordingOutput(spec, "s1");
    const r = spawnSync("ffmpeg", ["-v", "error", "-i", source, ...out.options, out.target], {
      encoding: "utf8",
    });
    expect(r.status, r.stderr).toBe(0);
    const listed = listSegments(spec.dir);
    expect(listed.length).toBeGreaterThanOrEqual(11);
    const now = Date.now();
    let clock = now + 60_000;
    const recording = new CameraRecording(spec, () => clock);
    // A killed decoder's last segment, never listed, three hours old: kept too, under the hour it ended in.
    const stray = path.join(spec.dir, "s0-000007.ts");
    copyFileSync(listed[0]!.file, stray);
    utimesSync(stray, (now - 3 * HOUR_MS) / 1000, (now - 3 * HOUR_MS) / 1000);
    // A minute on, every segment has left the 10 s buffer: archived, not deleted, except one a clip still holds.
    recording.pin([listed[0]!]);
    recording.prune();
    expect(readdirSync(spec.dir).filter((n) => n.endsWith(".ts"))).toEqual([path.basename(listed[0]!.file)]);
    recording.unpin([listed[0]!]);
    recording.prune();
    expect(readdirSync(spec.dir).filter((n) => n.endsWith(".ts"))).toEqual([]);
    expect(recording.between(now - 4 * HOUR_MS, now - 2 * HOUR_MS).map((s) => path.basename(s.file))).toEqual(
      [`${Math.round(now - 3 * HOUR_MS - 1000)}_${Math.round(now - 3 * HOUR_MS)}_s0-000007.ts`],
    );
    const kept = recording.between(now - HOUR_MS, now + HOUR_MS);
    expect(kept.map((s) => path.basename(s.file).replace(/^\d+_\d+_/, ""))).toEqual(
      listed.map((s) => path.basename(s.file)),
    );
    expect(kept.map((s) => [s.start, s.end])).toEqual(
      listed.map((s) => [Math.round(s.start), Math.round(s.end)]),
    );
    // A clip asked for after its video left the buffer (a record redelivered after a restart) is cut from the archive.
    const clips = new ClipStore(new FolderCropStore(path.join(dataDir, "crops")));
    const cutter = new ClipCutter(new Map([["door", recording]]), clips, {
      scratch: tempDir("vigil-rec-scratch-"),
      pollMs: 100,
    });
    const late = await cutter.cut({
      kind: "alerts",
      id: "a-late",
      cameraId: "door",
      ts: kept[2]!.start,
      from: kept[0]!.start,
      to: kept.at(-1)!.end,
    });
    if (!("clip" in late)) throw new Error(`no clip from the archive: ${late.none}`);
    expect(late.clip.bytes).toBeGreaterThan(0);
    // Any span of it, as one MP4, audited as footage leaving the system.
    const file = path.join(dataDir, "door.mp4");
    const cut = await recordingCommand(allConfig, {
      camera: "door",
      from: new Date(now - HOUR_MS).toISOString(),
      to: new Date(now + HOUR_MS).toISOString(),
      out: file,
    });
    const probe = spawnSync(
      "ffprobe",
      ["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", file],
      { encoding: "utf8" },
    );
    expect(Number(probe.stdout)).toBeGreaterThan(10);
    expect(cut).toMatchObject({ file, bytes: readFileSync(file).length, gaps: [] });
    expect(existsSync(`${file}.partial`)).toBe(false);
    // Footage leaving the system is in the audit log, with the span it covers.
    const audit = await openApiStore(allConfig);
    try {
      const { items } = await audit.listAudit({ limit: 10 });
      expect(items.find((e) => e.action === "export.recording")).toMatchObject({
        target: "door",
        outcome: "ok",
        summary: expect.objectContaining({ out: file, start: cut.start, end: cut.end, bytes: cut.bytes }),
      });
    } finally {
      await audit.close();
    }
    // A hole in the recording (the camera or ingest down) is named, not closed without a trace.
    expect(
      gapsIn([
        { file: "a", start: 0, end: 2000 },
        { file: "b", start: 2000, end: 4000 },
        { file: "c", start: 9000, end: 11000 },
      ]),
    ).toEqual([{ from: 4000, to: 9000 }]);
    await expect(
      recordingCommand(allConfig, {
        camera: "door",
        from: "2001-01-01T00:00:00Z",
        to: "2001-01-01T01:00:00Z",
        out: file,
      }),
    ).rejects.toThrow(/no video of camera door is kept between .*kept for 1 days/);
    // Past keepDays the hours go whole.
    clock = now + 2 * 86_400_000;
    recording.prune();
    expect(recording.between(now - HOUR_MS, now + HOUR_MS)).toEqual([]);
    expect(readdirSync(path.join(spec.dir, "archive"))).toEqual([]);
  });

  it("a Motion JPEG camera is decoded as before but not recorded, and says why", async () => {
    const server = await RtspTestServer.start({
      "/mjpeg": { kind: "test", width: 640, height: 360, fps: 10, codec: "jpeg" },
    });
    servers.push(server);
    const root = tempDir("vigil-rec-");
    const spec = resolveCamera({ id: "old", url: server.url("/mjpeg"), loop: false }, config.ingest, root);
    const { seen, emit } = statuses();
    const manager = new CameraManager([spec], emit, config.ingest).start();
    try {
      // Its first connection learns the codec and is dropped; the second decodes without the recording.
      for (let waited = 0; !(seen.at(-1)?.state === "live" && seen.at(-1)!.framesIn > 5); waited += 200) {
        if (waited > 30_000) throw new Error(`never live: ${JSON.stringify(seen.at(-1))}`);
        await sleep(200);
      }
      const last = seen.at(-1)!;
      expect(last.state).toBe("live");
      expect(last.framesIn).toBeGreaterThan(5);
      expect(last.recording?.on).toBe(false);
      expect(last.recording?.reason).toMatch(/mjpeg.*H\.264/);
      const segments = existsSync(spec.record!.dir)
        ? readdirSync(spec.record!.dir).filter((n) => n.endsWith(".ts"))
        : [];
      expect(manager.recordings().get("old")!.segments()).toEqual([]);
      expect(segments).toEqual([]); // what the first connection wrote before its codec was known is gone
    } finally {
      await manager.stop();
    }
  }, 60_000);

  it("a file camera says it is not recorded", async () => {
    const file = path.join(tempDir("vigil-rec-file-"), "clip.mp4");
    generateVideo("testsrc2=size=320x240:rate=10:duration=2", file);
    const spec = resolveCamera({ id: "f", url: file, loop: false }, config.ingest, tempDir("vigil-rec-"));
    const { seen, emit } = statuses();
    const manager = new CameraManager([spec], emit, config.ingest).start();
    await manager.done();
    expect(seen.at(-1)!.recording).toEqual({
      on: false,
      reason: expect.stringMatching(/file.*live cameras/),
    });
    // No clip is cut for it (its records name none, and the API's 404 says why): nothing waits for its video.
    expect(manager.recordings().has("f")).toBe(false);
  }, 60_000);

  it("bench ingest --record measures the same cameras with and without their recordings in one run", async () => {
    const r = await benchIngest(config, 1, 3, false, true);
    expect(r.record).toBeDefined();
    expect(r.record!.segmentsWritten).toBeGreaterThanOrEqual(2);
    expect(r.record!.cpuPerCamera).toBeGreaterThan(0);
    expect(r.record!.deliveredRatio).toBeGreaterThan(0.8);
    expect(Number.isFinite(r.record!.recordCpuOverDecoder)).toBe(true);
  }, 120_000);
});
