import os from "node:os";
import path from "node:path";
import type { Config } from "../../lib/config/index.ts";
import { progress } from "../../lib/telemetry/progress.ts";
import type { Vision } from "../../lib/vision/inference/vision.ts";
import { childProcesses, RtspScene, sleep, tickSeconds, type WindowSoFar } from "./rtsp-scene.ts";

export interface SoakSample {
  /** 0 is the start (every camera connected), then one a minute. */
  minute: number;
  rssMB: number;
  heapUsedMB: number;
  externalMB: number;
  arrayBuffersMB: number;
  /** `process.getActiveResourcesInfo()`: what keeps the event loop alive (sockets, pipes, timers, processes). */
  handles: number;
  handlesByType: Record<string, number>;
  /** Child processes of this process by command name (a zombie is named so): decoders, the RTSP test server. */
  children: Record<string, number>;
  ffmpegChildren: number;
  camerasLive: number;
  reconnects: number;
  /** Since the previous sample. Processed frames are not drained here: those in flight count at the next one. */
  framesOffered: number;
  framesProcessed: number;
  framesDropped: number;
}

export interface SoakResult {
  cameras: number;
  minutes: number;
  cameraFps: number;
  fps: number;
  video: string;
  /** Growth is measured from the sample at this minute: the end of the warm-up. */
  warmupMinutes: number;
  warmupRule: string;
  samples: SoakSample[];
  /** (RSS at the end − RSS at the end of the warm-up) / RSS at the end of the warm-up. */
  rssGrowthRatio: number;
  heapGrowthRatio: number;
  externalGrowthRatio: number;
  /** Over the whole soak, counted after the queues drained. */
  framesOffered: number;
  framesProcessed: number;
  processedRatio: number;
  framesDropped: number;
  alerts: number;
  p95AlertMs: number;
  /** Every minute processed frames. */
  framesFlowing: boolean;
  /** Embedded: stages meet on the in-memory bus, so there is no Kafka connection to count. */
  kafkaConnections: null;
  kafkaNote: string;
  /** Once the soak stopped its cameras: what is left (nothing, when nothing leaks). */
  afterStop: { children: Record<string, number>; ffmpegChildren: number; camerasRunning: number };
  /** The machine's 1-minute load average at the start sample and the last: on a shared machine it moves the figures. */
  loadAverage: { start: number; end: number };
  goal: string;
}

export interface SoakOptions {
  minutes: number;
  cameras: number;
  cameraFps: number;
  video?: string;
  /** Each sample as it is taken. */
  onSample?: (sample: SoakSample, result: Pick<SoakResult, "minutes" | "cameras">) => void;
}

export const SOAK_GOAL = "rssGrowthRatio ≤ 0.05";
const MB = 1024 * 1024;

function countBy(xs: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
}

/**
 * The warm-up whose end growth is measured from: the first 5 minutes, or half a run shorter than 10 minutes
 * (whole minutes, as samples are a minute apart). Memory settling in (JIT code, arenas, caches) is not a leak.
 */
export function soakWarmup(minutes: number): { minutes: number; rule: string } {
  return minutes >= 10
    ? { minutes: 5, rule: "the first 5 minutes" }
    : { minutes: Math.floor(minutes / 2), rule: `half the run, as it is shorter than 10 minutes` };
}

/**
 * N RTSP cameras through the embedded pipeline for a number of minutes, sampling memory, handles and child
 * processes each minute: memory should stay flat under load, frames keep flowing, and everything the soak
 * started is gone when it stops.
 */
export async function benchSoak(config: Config, vision: Vision, options: SoakOptions): Promise<SoakResult> {
  const { minutes, cameras } = options;
  if (!Number.isInteger(minutes) || minutes < 1) throw new RangeError(`--minutes must be a whole number ≥ 1`);
  const scene = await RtspScene.start(config, vision, "bench-soak", {
    video: options.video,
    cameraFps: options.cameraFps,
    // The cameras connect over up to 4 s and the start waits for them; then the run, and slack for the drain.
    streamSeconds: minutes * 60 + 60,
  });
  try {
    const set = await scene.startCameras(cameras);
    // The start sample is taken with every camera live (or after 20 s, whatever they are doing then).
    for (let i = 0; i < 40 && set.status().some((c) => c.state !== "live"); i++) await sleep(500);
    const window = scene.openWindow(set);
    const samples: SoakSample[] = [];
    let last: WindowSoFar = { seconds: 0, framesOffered: 0, framesProcessed: 0, framesDropped: 0 };
    const sample = (minute: number) => {
      const mem = process.memoryUsage();
      const handles = process.getActiveResourcesInfo();
      const children = childProcesses();
      const status = set.status();
      const now = window.soFar();
      const s: SoakSample = {
        minute,
        rssMB: mem.rss / MB,
        heapUsedMB: mem.heapUsed / MB,
        externalMB: mem.external / MB,
        arrayBuffersMB: mem.arrayBuffers / MB,
        handles: handles.length,
        handlesByType: countBy(handles),
        children,
        ffmpegChildren: children["ffmpeg"] ?? 0,
        camerasLive: status.filter((c) => c.state === "live").length,
        reconnects: status.reduce((n, c) => n + c.reconnects, 0),
        framesOffered: now.framesOffered - last.framesOffered,
        framesProcessed: now.framesProcessed - last.framesProcessed,
        framesDropped: now.framesDropped - last.framesDropped,
      };
      last = now;
      samples.push(s);
      options.onSample?.(s, { minutes, cameras });
    };
    sample(0);
    const loadStart = os.loadavg()[0]!;
    const bar = progress(`bench soak (${cameras} cameras, ${minutes} min)`, minutes * 60);
    for (let minute = 1; minute <= minutes; minute++) {
      await tickSeconds(60, bar);
      sample(minute);
    }
    bar.done();
    const loadEnd = os.loadavg()[0]!;
    const f = await window.finish();
    const left = childProcesses();
    const afterStop = {
      children: left,
      ffmpegChildren: left["ffmpeg"] ?? 0,
      camerasRunning: set.pids().length,
    };
    const warmup = soakWarmup(minutes);
    const from = samples[warmup.minutes]!;
    const to = samples[samples.length - 1]!;
    const growth = (a: number, b: number) => (b - a) / a;
    return {
      cameras,
      minutes,
      cameraFps: options.cameraFps,
      fps: config.ingest.fps,
      video: path.basename(scene.source),
      warmupMinutes: warmup.minutes,
      warmupRule: warmup.rule,
      samples,
      rssGrowthRatio: growth(from.rssMB, to.rssMB),
      heapGrowthRatio: growth(from.heapUsedMB, to.heapUsedMB),
      externalGrowthRatio: growth(from.externalMB, to.externalMB),
      framesOffered: f.framesOffered,
      framesProcessed: f.framesProcessed,
      processedRatio: f.processedRatio,
      framesDropped: f.framesDropped,
      alerts: f.alerts,
      p95AlertMs: f.p95AlertMs,
      framesFlowing: samples.slice(1).every((s) => s.framesProcessed > 0),
      kafkaConnections: null,
      kafkaNote: "not applicable: the embedded pipeline's stages meet on the in-memory bus",
      afterStop,
      loadAverage: { start: loadStart, end: loadEnd },
      goal: SOAK_GOAL,
    };
  } finally {
    await scene.close();
  }
}

const typeList = (byType: Record<string, number>) =>
  Object.entries(byType)
    .sort((a, b) => b[1] - a[1])
    .map(([t, n]) => `${t} ${n}`)
    .join(", ");

/** One sample as a line: printed as it is taken and in the final table. */
export function soakSampleLine(s: SoakSample, of: Pick<SoakResult, "minutes" | "cameras">): string {
  return (
    `minute ${String(s.minute).padStart(2)}/${of.minutes}: rss ${s.rssMB.toFixed(0)} MB, heap ${s.heapUsedMB.toFixed(0)} MB, ` +
    `external ${s.externalMB.toFixed(0)} MB (array buffers ${s.arrayBuffersMB.toFixed(0)}); ` +
    `handles ${s.handles} (${typeList(s.handlesByType)}); children ${typeList(s.children) || "none"}; ` +
    `ffmpeg ${s.ffmpegChildren}/${of.cameras}, live ${s.camerasLive}, reconnects ${s.reconnects}; ` +
    `frames processed ${s.framesProcessed} of ${s.framesOffered} offered since the last sample`
  );
}

export function printSoak(r: SoakResult, log: (line: string) => void = console.log) {
  log(
    `soak: ${r.cameras} RTSP cameras (${r.video}, 1280×720 at ${r.cameraFps} fps) sampled at ${r.fps} fps through the embedded pipeline for ${r.minutes} min`,
  );
  for (const s of r.samples) log(soakSampleLine(s, r));
  const pct = (v: number) => `${(v * 100).toFixed(1)} %`;
  log(
    `growth from minute ${r.warmupMinutes} (end of the warm-up: ${r.warmupRule}) to minute ${r.minutes}: ` +
      `rssGrowthRatio ${r.rssGrowthRatio.toFixed(3)} (${pct(r.rssGrowthRatio)}), heap ${r.heapGrowthRatio.toFixed(3)}, external ${r.externalGrowthRatio.toFixed(3)} (goal: ${r.goal})`,
  );
  log(
    `frames processed ${r.framesProcessed} of ${r.framesOffered} offered over the soak: ratio ${r.processedRatio.toFixed(3)} ` +
      `(${r.framesDropped} dropped at ingest); ${r.framesFlowing ? "frames flowed every minute" : "some minute processed no frame"}; ` +
      `alerts ${r.alerts}, p95 capture → alert ${Number.isFinite(r.p95AlertMs) ? r.p95AlertMs.toFixed(0) : "—"} ms`,
  );
  log(`Kafka connections: ${r.kafkaNote}`);
  log(
    `load average (1 min) ${r.loadAverage.start.toFixed(2)} at the start, ${r.loadAverage.end.toFixed(2)} at the end`,
  );
  log(
    `after stop: ${r.afterStop.ffmpegChildren} ffmpeg children, ${r.afterStop.camerasRunning} cameras running, ` +
      `children ${typeList(r.afterStop.children) || "none"}`,
  );
}
