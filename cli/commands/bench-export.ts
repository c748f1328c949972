import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { h264Args } from "../../lib/media/generate.ts";
import type { Config } from "../../lib/config/index.ts";
import { exportPerson } from "../../lib/export/person-export.ts";
import { cropLargestFace, samplePhotos, slideshowVideo } from "../../lib/media/sample-media.ts";
import { ClipStore } from "../../lib/store/clip-store.ts";
import { FolderCropStore } from "../../lib/store/crop-store.ts";
import { SqliteStore } from "../../lib/store/sqlite-store.ts";
import type { Vision } from "../../lib/vision/inference/vision.ts";
import { thresholdFor } from "../../lib/vision/models/calibration.ts";
import { decodeImage } from "../../lib/vision/pixels/image.ts";

function ffmpeg(args: string[]) {
  const r = spawnSync("ffmpeg", ["-v", "error", "-nostdin", "-y", ...args], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ffmpeg failed (${r.status}): ${r.stderr.trim()}`);
}

/** A store with one person, one visit of hers on `door`, and its clip: a group photo held for `seconds`. */
export interface ExportFixture {
  store: SqliteStore;
  clips: ClipStore;
  /** Her enrolled vector. */
  person: Float32Array;
  clipFile: string;
  /** The visit's time. */
  ts: number;
}

/**
 * What an export of a person needs, made from the npm sample photos: the largest face of a group photo is
 * enrolled as `alice`, and her visit's clip is that group (her and two others) as 1280×720 25 fps H.264. With
 * `video`, the clip is that footage instead (letterboxed to 1280×720, looped to `seconds`), and `alice` the largest
 * face of its first frame: people moving, entering and leaving, as a camera records them.
 */
export async function exportFixture(
  vision: Vision,
  config: Config,
  dir: string,
  seconds = 4,
  video?: string,
): Promise<ExportFixture> {
  const ts = Date.UTC(2026, 11, 6, 9);
  const photos = await samplePhotos(path.resolve(config.dataDir, "cache"));
  const faceFile = path.join(dir, "alice.jpg");
  const clipFile = path.join(dir, "door.mp4");
  if (video) {
    ffmpeg([
      ...["-stream_loop", "-1", "-i", video, "-t", String(seconds), "-an"],
      ...[
        "-vf",
        "scale=1280:720:force_original_aspect_ratio=decrease,pad=1280:720:(ow-iw)/2:(oh-ih)/2,setsar=1",
      ],
      ...["-r", "25", ...h264Args(), clipFile],
    ]);
    const first = path.join(dir, "first.jpg");
    ffmpeg(["-i", clipFile, "-frames:v", "1", first]);
    await cropLargestFace(vision, first, faceFile);
  } else {
    await cropLargestFace(vision, photos[0]!, faceFile);
    await slideshowVideo([photos[0]!], clipFile, { secondsEach: seconds, width: 1280, height: 720 });
  }
  const [face] = await vision.analyzer.analyze(await decodeImage(readFileSync(faceFile), "alice.jpg"), {
    maxSide: config.detect.maxSide,
  });
  const person = (await vision.embedder.embed([face!.crop]))[0]!;
  const store = new SqliteStore(path.join(dir, "vigil.db"));
  await store.upsertPerson({ id: "alice", name: "Alice", watchlistId: "default" });
  const modelId = vision.embedder.modelId;
  await store.addFace({
    faceId: "alice:alice.jpg",
    personId: "alice",
    modelId,
    vector: person,
    source: "alice.jpg",
  });
  await store.addSightings([
    {
      id: "s-door",
      trackId: "t1",
      cameraId: "door",
      startTs: ts,
      endTs: ts + 3000,
      faces: 10,
      modelId,
      quality: { faceSize: 90, interOcular: 40, sharpness: 120, yawDeg: 0, pitchDeg: 0, detScore: 0.95 },
      match: { personId: "alice", name: "Alice", score: 0.8 },
      vector: person,
      crop: Uint8Array.of(0xff, 0xd8),
    },
  ]);
  const clips = new ClipStore(new FolderCropStore(path.join(dir, "crops")));
  await clips.put(
    {
      kind: "sightings",
      id: "s-door",
      cameraId: "door",
      ts,
      start: ts - 500,
      end: ts - 500 + seconds * 1000,
      from: ts - 2000,
      to: ts + 5000,
      short: null,
    },
    new Uint8Array(readFileSync(clipFile)),
  );
  return { store, clips, person, clipFile, ts };
}

export interface ExportBenchResult {
  videoSeconds: number;
  frames: number;
  width: number;
  height: number;
  facesMasked: number;
  /** This process's and its ffmpeg children's CPU seconds per second of video. */
  cpuPerVideoSecond: number;
  /** 1 / cpuPerVideoSecond: seconds of video one core redacts a second (goal ≥ 1). */
  realTimePerCore: number;
}

/**
 * `vigil bench export`: a redacted export of a 720p clip, timed (CPU, decoder and encoder included): a group photo
 * held still, or real footage (`video`).
 */
export async function benchExport(
  config: Config,
  vision: Vision,
  seconds: number,
  video?: string,
): Promise<ExportBenchResult & { source: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), "vigil-bench-export-"));
  try {
    const f = await exportFixture(vision, config, dir, seconds, video);
    try {
      const manifest = await exportPerson(
        {
          store: f.store,
          clips: f.clips,
          vision,
          threshold: thresholdFor(vision.embedder.modelId, config),
          maxSide: config.detect.maxSide,
        },
        { person: "alice", out: path.join(dir, "out"), redact: "others" },
      );
      const r = manifest.files[0]!.redaction!;
      return {
        videoSeconds: r.seconds,
        frames: r.frames,
        width: 1280,
        height: 720,
        facesMasked: r.blurred,
        cpuPerVideoSecond: manifest.cpuPerVideoSecond!,
        realTimePerCore: 1 / manifest.cpuPerVideoSecond!,
        source: video ?? "a group photo held still",
      };
    } finally {
      f.store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
