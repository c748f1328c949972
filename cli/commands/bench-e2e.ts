import { execFileSync } from "node:child_process";
import path from "node:path";
import type { Config } from "../../lib/config/index.ts";
import { benchFaceVideo, cropLargestFace } from "../../lib/media/sample-media.ts";
import { SqliteStore } from "../../lib/store/sqlite-store.ts";
import { progress } from "../../lib/telemetry/progress.ts";
import { cameraStream } from "../../lib/testing/rtsp/media.ts";
import { RtspTestServer, type MountSpec } from "../../lib/testing/rtsp/server.ts";
import { tempDirFor } from "../../lib/util/temp.ts";
import type { Vision } from "../../lib/vision/inference/vision.ts";
import { enrolPhotos } from "../../lib/watchlist/enrol.ts";
import { resolveCamera } from "../../services/ingest/camera.ts";
import type { CameraManager } from "../../services/ingest/camera-manager.ts";
import { probeVideo } from "../../lib/media/ffmpeg.ts";
import type { VigilEvent } from "../../lib/events/events.ts";
import { EmbeddedPipeline } from "../pipeline.ts";
import { percentile } from "./bench-vision.ts";

export interface E2eBenchResult {
  cameras: number;
  /** All cameras started together, so a looped clip shows every new face on all of them at once. */
  synchronized: boolean;
  /** Frames per second each camera streams. */
  cameraFps: number;
  /** Frames per second the pipeline samples from each camera. */
  fps: number;
  seconds: number;
  video: string;
  flip: boolean;
  framesOffered: number;
  framesProcessed: number;
  processedRatio: number;
  framesDropped: number;
  facesPerSecond: number;
  /** Faces sent on to the embedder per second (the embed gate passes over faces embedded moments ago). */
  embeddedPerSecond: number;
  alerts: number;
  p50AlertMs: number;
  p95AlertMs: number;
  p95FaceMs: number;
}

/**
 * N RTSP cameras (GStreamer's server looping a face video) at the configured fps through every stage, with a
 * watchlist that matches the person in the video; alerts use a 2 s cool-down so latency has many samples.
 */
export async function benchE2e(
  config: Config,
  vision: Vision,
  cameras: number,
  seconds: number,
  options: { video?: string; cameraFps: number; synchronized?: boolean },
): Promise<E2eBenchResult> {
  const dir = tempDirFor(config, "bench-e2e");
  const source = await benchFaceVideo(config, dir, options.video);
  const warmupS = 6;
  const stream = cameraStream(
    source,
    path.resolve(config.dataDir, "bench"),
    seconds + warmupS + 15,
    1280,
    720,
    options.cameraFps,
  );
  const still = path.join(dir, "still.jpg");
  execFileSync("ffmpeg", ["-y", "-loglevel", "error", "-ss", "1", "-i", source, "-frames:v", "1", still]);
  await cropLargestFace(vision, still, path.join(dir, "watchlist", "subject", "subject.jpg"));
  const store = new SqliteStore(":memory:");
  await enrolPhotos(vision, store, { id: "subject", name: "subject" }, [
    path.join(dir, "watchlist", "subject", "subject.jpg"),
  ]);
  const mounts: Record<string, MountSpec> = {};
  for (let i = 0; i < cameras; i++) mounts[`/cam${i + 1}`] = { kind: "file", path: stream };
  const server = await RtspTestServer.start(mounts);
  const benchConfig: Config = { ...config, match: { ...config.match, alertCooldownS: 2 } };
  let measuring = false;
  const alertLatency: number[] = [];
  const faceLatency: number[] = [];
  const onEvent = (e: VigilEvent) => {
    if (!measuring) return;
    if (e.type === "alert") alertLatency.push(Date.now() - e.ts);
    if (e.type === "face") faceLatency.push(Date.now() - e.ts);
  };
  const pipeline = await EmbeddedPipeline.start(
    benchConfig,
    vision,
    { watchlist: store, history: store },
    onEvent,
  );
  const specs = Object.keys(mounts).map((m, i) =>
    resolveCamera({ id: `cam${i + 1}`, url: server.url(m), loop: false }, config.ingest),
  );
  // Each mount plays its loop from when its camera connects. Connecting them all at once would make 8 cameras
  // show the same frame at the same instant, every new face arriving on all of them together each loop: no
  // real site looks like that. Spread over one loop of the clip, they are independent; --synchronized keeps
  // the worst case.
  const clipS = (await probeVideo(source)).durationS ?? 4;
  const staggerMs = options.synchronized ? 0 : (Math.min(clipS, 4) * 1000) / cameras;
  const managers: CameraManager[] = [];
  const sleep = (ms = 1000) => new Promise((r) => setTimeout(r, ms));
  for (const spec of specs) {
    managers.push(pipeline.startCameras([spec]));
    if (staggerMs > 0) await sleep(staggerMs);
  }
  const manager = {
    status: () => managers.flatMap((m) => m.status()),
    stop: () => Promise.all(managers.map((m) => m.stop())),
  };
  const bar = progress(`bench e2e (${cameras} cameras)`, warmupS + seconds);
  try {
    for (let i = 0; i < warmupS; i++, bar.tick()) await sleep();
    const offered = () => manager.status().reduce((s, c) => s + c.framesIn, 0);
    const dropped = () => manager.status().reduce((s, c) => s + c.framesDropped, 0);
    const stats = pipeline.detect.stats;
    // Processed frames are those captured inside the window, counted once the queues have drained: frames
    // still queued at either edge would otherwise count against one window and for the other.
    const window = { start: Infinity, end: Infinity, processed: 0 };
    pipeline.detect.onFrameProcessed = ({ captureTs }) => {
      if (captureTs >= window.start && captureTs < window.end) window.processed++;
    };
    const [o0, d0, f0, e0] = [offered(), dropped(), stats.faces, stats.embedded];
    const t0 = Date.now();
    window.start = t0;
    measuring = true;
    for (let i = 0; i < seconds; i++, bar.tick()) await sleep();
    measuring = false;
    const t1 = Date.now();
    window.end = t1;
    const elapsed = (t1 - t0) / 1000;
    const [o1, d1, f1, e1] = [offered(), dropped(), stats.faces, stats.embedded];
    await manager.stop();
    await pipeline.drain();
    bar.done();
    const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
    return {
      cameras,
      synchronized: staggerMs === 0,
      cameraFps: options.cameraFps,
      fps: config.ingest.fps,
      seconds: elapsed,
      video: path.basename(source),
      flip: config.embed.flip,
      framesOffered: o1 - o0,
      framesProcessed: window.processed,
      processedRatio: window.processed / Math.max(1, o1 - o0),
      framesDropped: d1 - d0,
      facesPerSecond: (f1 - f0) / elapsed,
      embeddedPerSecond: (e1 - e0) / elapsed,
      alerts: alertLatency.length,
      p50AlertMs: percentile(sorted(alertLatency), 0.5),
      p95AlertMs: percentile(sorted(alertLatency), 0.95),
      p95FaceMs: percentile(sorted(faceLatency), 0.95),
    };
  } finally {
    await manager.stop();
    await pipeline.close();
    await server.kill();
    store.close();
  }
}
