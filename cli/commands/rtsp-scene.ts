import type { Command } from "commander";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import path from "node:path";
import type { Config } from "../../lib/config/index.ts";
import type { VigilEvent } from "../../lib/events/events.ts";
import { probeVideo } from "../../lib/media/ffmpeg.ts";
import { processCpuSeconds } from "../../lib/media/proc-stats.ts";
import { benchFaceVideo, cropLargestFace } from "../../lib/media/sample-media.ts";
import { SqliteStore } from "../../lib/store/sqlite-store.ts";
import type { Progress } from "../../lib/telemetry/progress.ts";
import { cameraStream } from "../../lib/testing/rtsp/media.ts";
import { RtspTestServer, type MountSpec } from "../../lib/testing/rtsp/server.ts";
import { tempDirFor } from "../../lib/util/temp.ts";
import type { Vision } from "../../lib/vision/inference/vision.ts";
import { enrolPhotos } from "../../lib/watchlist/enrol.ts";
import type { CameraManager } from "../../services/ingest/camera-manager.ts";
import { resolveCamera, type CameraSpec } from "../../services/ingest/camera.ts";
import type { CameraStatus } from "../../services/ingest/camera-supervisor.ts";
import { EmbeddedPipeline } from "../pipeline.ts";
import { percentile } from "./bench-vision.ts";

/** ffmpeg overwriting its output and saying only what went wrong. */
const QUIET = ["-y", "-loglevel", "error"];

export const sleep = (ms = 1000) => new Promise((r) => setTimeout(r, ms));

/** Whole seconds of wall time, one progress tick each, so a long wait shows it is alive. */
export async function tickSeconds(seconds: number, bar: Progress): Promise<void> {
  for (let i = 0; i < seconds; i++, bar.tick()) await sleep();
}

/** The options `bench e2e` and `bench soak` share: how many cameras and what they show. */
export function sceneCliOptions(command: Command): Command {
  return command
    .option("--cameras <n>", "number of cameras", Number, 8)
    .option(
      "--camera-fps <n>",
      "frames per second each camera streams (the pipeline samples ingest.fps)",
      Number,
      25,
    )
    .option(
      "--video <file>",
      "face video to loop (default: the development talking-head clip, else npm photos)",
    );
}

export interface SceneOptions {
  /** Face video to loop (default: the development talking-head clip, else npm photos). */
  video?: string;
  /** Frames per second each camera streams. */
  cameraFps: number;
  /** How long a camera must stream before its file ends (an end is a reconnect, which would disturb a window). */
  streamSeconds: number;
  /** Connect every camera at once instead of spreading them over one loop of the clip. */
  synchronized?: boolean;
}

/** N cameras of the scene, each on its own mount of an RTSP server of their own. */
export interface CameraSet {
  readonly count: number;
  /** Milliseconds between two cameras connecting (0: synchronized). */
  readonly staggerMs: number;
  status(): CameraStatus[];
  /** The ffmpeg decoders running now. */
  pids(): number[];
  /** The RTSP server that plays the cameras: on this machine, but not part of Vigil. */
  serverPid(): number | undefined;
  /** Stops every camera (resolves once every ffmpeg child has exited), then the RTSP server. Idempotent. */
  stop(): Promise<void>;
}

/** What a measurement window saw; processed frames are those captured inside it, counted after the drain. */
export interface WindowFigures {
  seconds: number;
  framesOffered: number;
  framesProcessed: number;
  processedRatio: number;
  framesDropped: number;
  faces: number;
  embedded: number;
  facesPerSecond: number;
  /** Faces sent on to the embedder per second (the embed gate passes over faces embedded moments ago). */
  embeddedPerSecond: number;
  alerts: number;
  p50AlertMs: number;
  p95AlertMs: number;
  /** Capture → embedded face. */
  p95FaceMs: number;
  /** ffmpeg decoder CPU per frame delivered: the whole stream is decoded, a frame every 1/fps s is kept. */
  decodeCpuMsPerFrame: number;
  /**
   * This process's CPU (every thread: the stages, the vision workers, ONNX Runtime) per processed frame over the
   * window, drain excluded: models and everything around them, decoding not.
   */
  vigilCpuMsPerFrame: number;
  /** Cores the RTSP server playing the cameras took over the window: the simulated cameras' share of the machine. */
  cameraServerCores: number;
}

/** Live counts of an open window, for progress lines; processed frames here are not drained yet. */
export interface WindowSoFar {
  seconds: number;
  framesOffered: number;
  framesProcessed: number;
  framesDropped: number;
}

export interface MeasureWindow {
  soFar(): WindowSoFar;
  /** Closes the window, stops its cameras, drains the pipeline and returns the figures. */
  finish(): Promise<WindowFigures>;
}

/**
 * Camera-like H.264 of the clip lasting at least `seconds`. One minute is re-encoded once; longer streams (a
 * half-hour soak) are that minute copied end to end by ffmpeg without re-encoding, which takes seconds where
 * encoding 30 minutes of 720p would take many minutes of both cores. Lengths round up to 10 minutes so that
 * nearby runs share one cached file.
 */
function sceneStream(source: string, dir: string, seconds: number, fps: number): string {
  const minute = cameraStream(source, dir, 60, 1280, 720, fps);
  if (seconds <= 60) return minute;
  const total = Math.ceil(seconds / 600) * 600;
  const out = minute.replace(/-60s\.ts$/, `-${total}s.ts`);
  if (existsSync(out)) return out;
  const partial = `${out}.partial`;
  const args = ["-stream_loop", "-1", "-i", minute, "-c", "copy", "-t", String(total), "-f", "mpegts"];
  execFileSync("ffmpeg", [...QUIET, ...args, partial]);
  // Renamed only once whole: an interrupted copy must not be taken for the cached stream next time.
  renameSync(partial, out);
  return out;
}

/**
 * The scene `bench e2e` and `bench soak` measure: RTSP cameras from GStreamer's server, each looping a face
 * clip as camera-like 1280×720 H.264; a watchlist photo of the person in the clip; every stage in one process
 * (the embedded pipeline); alerts on a 2 s cool-down so latency has many samples.
 */
export class RtspScene {
  private windowOpen = false;
  private readonly window = { start: Infinity, end: Infinity, processed: 0 };
  private readonly alertLatency: number[] = [];
  private readonly faceLatency: number[] = [];
  private readonly sets = new Set<CameraSet>();

  private constructor(
    readonly config: Config,
    readonly pipeline: EmbeddedPipeline,
    /** The clip the cameras loop. */
    readonly source: string,
    /** The H.264 file every mount serves. */
    readonly stream: string,
    readonly clipSeconds: number,
    private readonly options: SceneOptions,
    private readonly store: SqliteStore,
    private readonly dir: string,
  ) {
    // Processed frames are those captured inside the window, counted once the queues have drained: frames
    // still queued at either edge would otherwise count against one window and for the other.
    pipeline.detect.onFrameProcessed = ({ captureTs }) => {
      if (captureTs >= this.window.start && captureTs < this.window.end) this.window.processed++;
    };
  }

  static async start(
    config: Config,
    vision: Vision,
    label: string,
    options: SceneOptions,
  ): Promise<RtspScene> {
    const dir = tempDirFor(config, label);
    const store = new SqliteStore(":memory:");
    try {
      const source = await benchFaceVideo(config, dir, options.video);
      const stream = sceneStream(
        source,
        path.resolve(config.dataDir, "bench"),
        options.streamSeconds,
        options.cameraFps,
      );
      const still = path.join(dir, "still.jpg");
      execFileSync("ffmpeg", [...QUIET, "-ss", "1", "-i", source, "-frames:v", "1", still]);
      const photo = path.join(dir, "watchlist", "subject", "subject.jpg");
      await cropLargestFace(vision, still, photo);
      await enrolPhotos(vision, store, { id: "subject", name: "subject" }, [photo]);
      const clipSeconds = (await probeVideo(source)).durationS ?? 4;
      const benchConfig: Config = { ...config, match: { ...config.match, alertCooldownS: 2 } };
      // Events reach the scene once it exists; none come before a camera runs.
      const sink: { scene?: RtspScene } = {};
      const pipeline = await EmbeddedPipeline.start(
        benchConfig,
        vision,
        { watchlist: store, history: store },
        (e) => sink.scene?.onEvent(e),
      );
      sink.scene = new RtspScene(benchConfig, pipeline, source, stream, clipSeconds, options, store, dir);
      return sink.scene;
    } catch (err) {
      store.close();
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  private onEvent(e: VigilEvent) {
    if (!this.windowOpen) return;
    if (e.type === "alert") this.alertLatency.push(Date.now() - e.ts);
    if (e.type === "face") this.faceLatency.push(Date.now() - e.ts);
  }

  /** Camera `i` (from 0) of this scene reading `url`, as ingest resolves it (fps, frame size from the config). */
  cameraSpec(i: number, url: string): CameraSpec {
    return resolveCamera({ id: `cam${i + 1}`, url, loop: false }, this.config.ingest);
  }

  /**
   * Starts `count` cameras on a fresh RTSP server. Each mount plays its loop from when its camera connects.
   * Connecting them all at once would make the cameras show the same frame at the same instant, every new face
   * arriving on all of them together each loop: no real site looks like that. Spread over one loop of the clip,
   * they are independent; `synchronized` keeps the worst case.
   */
  async startCameras(count: number): Promise<CameraSet> {
    const mounts: Record<string, MountSpec> = {};
    for (let i = 0; i < count; i++) mounts[`/cam${i + 1}`] = { kind: "file", path: this.stream };
    const server = await RtspTestServer.start(mounts);
    const staggerMs = this.options.synchronized ? 0 : (Math.min(this.clipSeconds, 4) * 1000) / count;
    const managers: CameraManager[] = [];
    let stopping: Promise<void> | undefined;
    const set: CameraSet = {
      count,
      staggerMs,
      status: () => managers.flatMap((m) => m.status()),
      pids: () => managers.flatMap((m) => m.pids()),
      serverPid: () => server.pid,
      stop: () =>
        (stopping ??= (async () => {
          try {
            await Promise.all(managers.map((m) => m.stop()));
          } finally {
            await server.kill();
            this.sets.delete(set);
          }
        })()),
    };
    this.sets.add(set);
    for (let i = 0; i < count; i++) {
      managers.push(this.pipeline.startCameras([this.cameraSpec(i, server.url(`/cam${i + 1}`))]));
      if (staggerMs > 0) await sleep(staggerMs);
    }
    return set;
  }

  /** Opens a measurement window over `cameras` (one window at a time: latencies are the scene's). */
  openWindow(cameras: CameraSet): MeasureWindow {
    if (this.windowOpen) throw new Error("a measurement window is already open");
    const status = () => cameras.status();
    const offered = () => status().reduce((s, c) => s + c.framesIn, 0);
    const dropped = () => status().reduce((s, c) => s + c.framesDropped, 0);
    const stats = this.pipeline.detect.stats;
    // Decoder CPU per process id: a camera that reconnects inside the window brings a new decoder, counted whole.
    const decoderCpu = () => new Map(cameras.pids().map((pid) => [pid, processCpuSeconds(pid) ?? 0]));
    this.alertLatency.length = 0;
    this.faceLatency.length = 0;
    const serverCpu = () => processCpuSeconds(cameras.serverPid() ?? -1) ?? 0;
    const [o0, d0, f0, e0, cpu0] = [offered(), dropped(), stats.faces, stats.embedded, decoderCpu()];
    const [own0, server0] = [process.cpuUsage(), serverCpu()];
    const t0 = Date.now();
    Object.assign(this.window, { start: t0, end: Infinity, processed: 0 });
    this.windowOpen = true;
    return {
      soFar: () => ({
        seconds: (Date.now() - t0) / 1000,
        framesOffered: offered() - o0,
        framesProcessed: this.window.processed,
        framesDropped: dropped() - d0,
      }),
      finish: async () => {
        this.windowOpen = false;
        const t1 = Date.now();
        this.window.end = t1;
        const [o1, d1, f1, e1, cpu1] = [offered(), dropped(), stats.faces, stats.embedded, decoderCpu()];
        const [own, server1] = [process.cpuUsage(own0), serverCpu()];
        await cameras.stop();
        await this.pipeline.drain();
        const elapsed = (t1 - t0) / 1000;
        const framesOffered = o1 - o0;
        let decodeCpuS = 0;
        for (const [pid, cpu] of cpu1) decodeCpuS += cpu - (cpu0.get(pid) ?? 0);
        const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
        return {
          seconds: elapsed,
          framesOffered,
          framesProcessed: this.window.processed,
          processedRatio: this.window.processed / Math.max(1, framesOffered),
          framesDropped: d1 - d0,
          faces: f1 - f0,
          embedded: e1 - e0,
          facesPerSecond: (f1 - f0) / elapsed,
          embeddedPerSecond: (e1 - e0) / elapsed,
          alerts: this.alertLatency.length,
          p50AlertMs: percentile(sorted(this.alertLatency), 0.5),
          p95AlertMs: percentile(sorted(this.alertLatency), 0.95),
          p95FaceMs: percentile(sorted(this.faceLatency), 0.95),
          decodeCpuMsPerFrame: (decodeCpuS * 1000) / Math.max(1, framesOffered),
          vigilCpuMsPerFrame: (own.user + own.system) / 1000 / Math.max(1, this.window.processed),
          cameraServerCores: (server1 - server0) / elapsed,
        };
      },
    };
  }

  /** Stops whatever cameras are still running, the pipeline and its workers; removes the scene's files. */
  async close(): Promise<void> {
    try {
      await Promise.all([...this.sets].map((s) => s.stop()));
      await this.pipeline.close();
    } finally {
      this.store.close();
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

/**
 * A line of a long bench's own (a step's figures, a sample) on stderr. On a TTY it first clears the line the
 * progress bar is drawn on, so the line stands alone and the bar redraws below it.
 */
export function sayAboveProgress(line: string, stream: NodeJS.WriteStream = process.stderr): void {
  stream.write(`${stream.isTTY ? "\r\x1b[2K" : ""}${line}\n`);
}

/** Child processes of `pid` by command name, from /proc/<pid>/task/<tid>/children (any thread may spawn). */
export function childProcesses(pid = process.pid): Record<string, number> {
  const byName: Record<string, number> = {};
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return byName;
  }
  for (const task of tasks) {
    let children: string;
    try {
      children = readFileSync(`/proc/${pid}/task/${task}/children`, "utf8");
    } catch {
      continue; // the thread ended while being read
    }
    for (const child of children.split(" ").filter(Boolean)) {
      try {
        const stat = readFileSync(`/proc/${child}/stat`, "utf8");
        const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
        // An exited child nobody reaped is a leak too; it must not pass for a running decoder.
        const zombie = stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
        const key = zombie ? `${name} (zombie)` : name;
        byName[key] = (byName[key] ?? 0) + 1;
      } catch {
        // exited between the two reads
      }
    }
  }
  return byName;
}
