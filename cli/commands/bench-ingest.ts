import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { MemoryBus } from "../../lib/bus/index.ts";
import type { Config } from "../../lib/config/index.ts";
import { FrameContract, Topics } from "../../lib/contracts/index.ts";
import { generateVideo } from "../../lib/media/generate.ts";
import { processCpuSeconds } from "../../lib/media/proc-stats.ts";
import { progress } from "../../lib/telemetry/progress.ts";
import { RtspTestServer, type MountSpec } from "../../lib/testing/rtsp/server.ts";
import { CameraManager } from "../../services/ingest/camera-manager.ts";
import { resolveCamera, type CameraSpec } from "../../services/ingest/camera.ts";
import { percentile } from "./bench-vision.ts";

/**
 * A 1280×720 25 fps H.264 stream shaped like an IP camera's (1 s GOP, no B-frames: x264's zerolatency tune),
 * made once with ffmpeg and served by the RTSP server.
 */
export function benchStreamFile(dataDir: string, seconds: number): string {
  const dir = path.resolve(dataDir, "bench");
  const file = path.join(dir, `camera-720p25-${seconds}s.ts`);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    generateVideo(`testsrc2=size=1280x720:rate=25:duration=${seconds}`, file, {
      gop: 25,
      cameraLike: true,
      bitrate: "2500k",
      container: "mpegts",
    });
  }
  return file;
}

export interface IngestBenchResult {
  cameras: number;
  fps: number;
  keyframesOnly: boolean;
  seconds: number;
  framesDelivered: number;
  framesExpected: number;
  deliveredRatio: number;
  /** ffmpeg decoder CPU, as a fraction of one core, per camera. */
  cpuPerCamera: number;
  /** The RTSP server's own CPU (packetising the streams), for context; not part of Vigil's cost. */
  serverCpuCores: number;
  /** From the decoded frame reaching ingest to a bus consumer receiving it. */
  p95LatencyMs: number;
  /** Steady state: how far behind its own cadence a camera's frames arrive (falling behind shows here). */
  p95CadenceLagMs: number;
  reconnects: number;
  framesDropped: number;
  /**
   * Bare `ffmpeg -f null` decoding the same stream in the same run, as a fraction of one core: what the CPU
   * itself charges for H.264 at this resolution, so the ingest cost reads as a ratio that does not depend on it.
   */
  decoderBaselineCpu: number;
  /** cpuPerCamera / decoderBaselineCpu: Vigil's overhead over the decoder it cannot avoid. */
  ingestOverDecoder: number;
  /**
   * `--record`: the same cameras again, each decoded at once by a decoder that also copies it into its rolling
   * recording (segments of `ingest.record.segmentS`) and by one that does not: their CPU per camera, and what the
   * copy adds over the decoder's own.
   */
  record?: {
    cpuPerCamera: number;
    decoderCpuPerCamera: number;
    recordCpuOverDecoder: number;
    segmentsWritten: number;
    deliveredRatio: number;
  };
}

/** CPU of one bare decoder on the stream (no sampling, no scaling, frames thrown away), in cores. */
async function decoderBaseline(url: string, config: Config, seconds: number): Promise<number> {
  const threads = config.ingest.decoderThreads;
  const child = spawn(
    "ffmpeg",
    [
      "-nostdin",
      "-loglevel",
      "error",
      "-rtsp_transport",
      "tcp",
      "-threads",
      String(threads),
      "-i",
      url,
      "-f",
      "null",
      "-",
    ],
    { stdio: "ignore" },
  );
  try {
    await new Promise((r) => setTimeout(r, 2000));
    const pid = child.pid!;
    const c0 = processCpuSeconds(pid) ?? 0;
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const used = (processCpuSeconds(pid) ?? c0) - c0;
    return used / ((performance.now() - t0) / 1000);
  } finally {
    child.kill("SIGKILL");
  }
}

/**
 * The cameras again, twice over at once: each decoded by one decoder that also records it and one that does not,
 * side by side in the same window, so the difference is the recording's and not the machine's moment (two passes
 * one after the other differed by more than the copy costs). Per camera: both decoders' CPU, segments written,
 * frames the recording decoders delivered.
 */
async function recordingPass(specs: CameraSpec[], config: Config, warmupS: number, seconds: number) {
  const root = mkdtempSync(path.join(tmpdir(), "vigil-bench-record-"));
  const recorded = specs.map((c) => ({
    ...c,
    id: `${c.id}-recorded`,
    record: { ...config.ingest.record, keep: "alerts" as const, dir: path.join(root, c.id) },
  }));
  const plain = specs.map((c) => ({ ...c, id: `${c.id}-plain` }));
  // Frames are counted by the cameras (framesIn) and dropped: this pass measures the decoders only.
  const managers = [recorded, plain].map((group) => new CameraManager(group, async () => {}, config.ingest));
  const bar = progress(`bench ingest: recording side by side`, warmupS + seconds);
  try {
    for (const m of managers) m.start();
    // The warm-up counts from when every decoder delivers: on a loaded machine the RTSP connection alone can
    // take seconds, and a window that began before it would hold no finished segment.
    const live = () => managers.every((m) => m.status().every((c) => c.state === "live" && c.framesIn > 0));
    for (let waited = 0; !live(); waited += 200) {
      if (waited > 30_000)
        throw new Error(
          `bench ingest: the recording pass's cameras never went live: ${JSON.stringify(managers.map((m) => m.status()))}`,
        );
      await new Promise((r) => setTimeout(r, 200));
    }
    for (let i = 0; i < warmupS; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      bar.tick();
    }
    const cpu = (m: CameraManager) => m.pids().reduce((sum, pid) => sum + (processCpuSeconds(pid) ?? 0), 0);
    const frames = (m: CameraManager) => m.status().reduce((s, c) => s + c.framesIn, 0);
    const cpu0 = managers.map(cpu);
    const frames0 = frames(managers[0]!);
    const t0 = Date.now();
    for (let i = 0; i < seconds; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      bar.tick();
    }
    const elapsed = (Date.now() - t0) / 1000;
    const [withRecording, without] = managers.map((m, i) => (cpu(m) - cpu0[i]!) / elapsed / specs.length);
    bar.done();
    const segments = [...managers[0]!.recordings().values()].reduce((n, r) => n + r.segments().length, 0);
    return {
      cpuPerCamera: withRecording!,
      withoutCpuPerCamera: without!,
      elapsed,
      frames: frames(managers[0]!) - frames0,
      segments,
    };
  } finally {
    for (const m of managers) await m.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

/**
 * N simulated 720p25 RTSP cameras (GStreamer's server playing the same file on N mounts) sampled at the
 * configured fps through the camera manager and the in-memory bus, for a fixed time after warm-up.
 */
export async function benchIngest(
  config: Config,
  cameras: number,
  seconds: number,
  keyframesOnly = false,
  record = false,
): Promise<IngestBenchResult> {
  const warmupS = 4;
  // Long enough for every pass: the server plays it once, in real time (the recording pass comes after the
  // first and the bare decoder's).
  const file = benchStreamFile(
    config.dataDir,
    record ? 2 * (seconds + warmupS) + 25 : seconds + warmupS + 10,
  );
  const mounts: Record<string, MountSpec> = {};
  for (let i = 0; i < cameras; i++) mounts[`/cam${i + 1}`] = { kind: "file", path: file };
  const server = await RtspTestServer.start(mounts);
  const bus = new MemoryBus({ capacity: config.bus.queueCapacity });
  const fps = config.ingest.fps;
  const frames: { cameraId: string; captureTs: number; deliveredAt: number }[] = [];
  await bus.subscribe(Topics.frames, { group: "bench", maxBatch: 64 }, async (records) => {
    const deliveredAt = Date.now();
    for (const r of records) {
      const f = FrameContract.decode(r.value);
      frames.push({ cameraId: f.cameraId, captureTs: f.captureTs, deliveredAt });
    }
  });
  const specs = Object.keys(mounts).map((m, i) =>
    resolveCamera(
      { id: `cam${i + 1}`, url: server.url(m), width: 1280, height: 720, keyframesOnly, loop: false },
      config.ingest,
    ),
  );
  const manager = new CameraManager(
    specs,
    async (e) => bus.publish(e.topic, [{ key: e.key, value: e.value }]),
    config.ingest,
  ).start();
  const bar = progress(`bench ingest (${cameras} cameras)`, warmupS + seconds);
  try {
    for (let i = 0; i < warmupS; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      bar.tick();
    }
    const cpu = () => manager.pids().reduce((sum, pid) => sum + (processCpuSeconds(pid) ?? 0), 0);
    const serverCpu = () => (server.pid ? (processCpuSeconds(server.pid) ?? 0) : 0);
    const cpu0 = cpu();
    const server0 = serverCpu();
    const t0 = Date.now();
    for (let i = 0; i < seconds; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      bar.tick();
    }
    const t1 = Date.now();
    const elapsed = (t1 - t0) / 1000;
    const cpuUsed = cpu() - cpu0;
    const serverUsed = serverCpu() - server0;
    bar.done();
    // Frames captured inside the window count as delivered whenever they arrive; give the tail a moment.
    await new Promise((r) => setTimeout(r, 1000));
    const inWindow = frames.filter((f) => f.captureTs >= t0 && f.captureTs < t1);
    const effectiveFps = keyframesOnly ? Math.min(fps, 1) : fps; // the bench stream has one keyframe a second
    const lags: number[] = [];
    for (let c = 1; c <= cameras; c++) {
      const ts = inWindow.filter((f) => f.cameraId === `cam${c}`).map((f) => f.captureTs);
      // Frame k after the camera's first in-window frame is due k/fps later; anything beyond is falling behind.
      const raw = ts.map((t, k) => t - ts[0]! - (k * 1000) / effectiveFps);
      const base = Math.min(...raw);
      lags.push(...raw.map((l) => l - base));
    }
    const status = manager.status();
    await manager.stop();
    const baseline = await decoderBaseline(specs[0]!.url, config, Math.min(seconds, 10));
    const expected = cameras * effectiveFps * elapsed;
    const cpuPerCamera = cpuUsed / elapsed / cameras;
    const recorded = record ? await recordingPass(specs, config, warmupS, seconds) : undefined;
    return {
      ...(recorded
        ? {
            record: {
              cpuPerCamera: recorded.cpuPerCamera,
              decoderCpuPerCamera: recorded.withoutCpuPerCamera,
              recordCpuOverDecoder:
                (recorded.cpuPerCamera - recorded.withoutCpuPerCamera) / recorded.withoutCpuPerCamera,
              segmentsWritten: recorded.segments,
              deliveredRatio: recorded.frames / (cameras * effectiveFps * recorded.elapsed),
            },
          }
        : {}),
      cameras,
      fps: effectiveFps,
      keyframesOnly,
      seconds: elapsed,
      framesDelivered: inWindow.length,
      framesExpected: Math.round(expected),
      deliveredRatio: inWindow.length / expected,
      cpuPerCamera,
      decoderBaselineCpu: baseline,
      ingestOverDecoder: cpuPerCamera / baseline,
      serverCpuCores: serverUsed / elapsed,
      p95LatencyMs: percentile(
        inWindow.map((f) => f.deliveredAt - f.captureTs).sort((a, b) => a - b),
        0.95,
      ),
      p95CadenceLagMs: percentile(
        lags.sort((a, b) => a - b),
        0.95,
      ),
      reconnects: status.reduce((s, c) => s + c.reconnects, 0),
      framesDropped: status.reduce((s, c) => s + c.framesDropped, 0),
    };
  } finally {
    await manager.stop();
    await bus.close();
    await server.kill();
  }
}
