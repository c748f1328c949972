import { availableParallelism } from "node:os";
import { performance } from "node:perf_hooks";
import { MemoryBus } from "../../lib/bus/index.ts";
import type { Config } from "../../lib/config/index.ts";
import { Topics } from "../../lib/contracts/index.ts";
import { StageRunner } from "../../lib/runtime/runner.ts";
import { SqliteStore } from "../../lib/store/sqlite-store.ts";
import { progress } from "../../lib/telemetry/progress.ts";
import { loadVision, type Vision } from "../../lib/vision/inference/vision.ts";
import { alignFace } from "../../lib/vision/pixels/align.ts";
import { assessQuality } from "../../lib/vision/pixels/quality.ts";
import type { Yuv420Image } from "../../lib/vision/pixels/yuv.ts";
import { startVisionThreads } from "../../lib/vision/threads/vision-thread.ts";
import { createDetectAlign } from "../../services/detect-align/index.ts";
import { EmbeddedPipeline } from "../pipeline.ts";
import { drainWithin, LiveCameras, loadBenchFrames, rampCameras } from "./camera-ramp.ts";

/** The figures the issue sets for one detect-align process on this machine's 2 cores, 720p frames. */
export const PLUMBING_GOALS = {
  mainThreadMsPerFrame: 0.5,
  cpuMsPerFrame: 2,
  alignMsPerFace: 0.1,
  plumbingFramesPerSecond: 1000,
} as const;

export type PlumbingShape = "detect-align" | "embedded";

export interface PlumbingStep {
  cameras: number;
  /** Frames the cameras offered in the window, and the share of them processed (detection ran on them). */
  offered: number;
  processedRatio: number;
  /** Frames the cameras dropped because their previous frame was still being published. */
  dropped: number;
  /** Frames detection finished in the window, per second (the per-frame costs below divide by this count). */
  framesPerSecond: number;
  facesPerSecond: number;
  /** Event-loop busy time per frame: utilisation × wall time / frames. */
  mainThreadMsPerFrame: number;
  /** The process's CPU time (every thread) per frame. */
  cpuMsPerFrame: number;
  pass: boolean;
}

export interface PlumbingShapeResult {
  shape: PlumbingShape;
  what: string;
  /** Frames/s at the largest camera count that passed (processed ≥ 0.99), and that count. */
  plumbingFramesPerSecond: number;
  maxCameras: number;
  /** At that step. */
  mainThreadMsPerFrame: number;
  cpuMsPerFrame: number;
  steps: PlumbingStep[];
  note: string;
}

export interface PlumbingBenchResult {
  cores: number;
  frames: { source: string; width: number; height: number };
  standIn: { faces: number; costMs: number };
  detectWorkers: number;
  embedWorkers: number;
  /** The similarity warp of one face to the embedder's 112×112 template, on the main thread. */
  alignMsPerFace: number;
  /** Quality scoring of one aligned face (sharpness, pose, size), which detect-align does for every face. */
  qualityMsPerFace: number;
  excluded: string;
  shapes: PlumbingShapeResult[];
  goals: typeof PLUMBING_GOALS;
}

export interface PlumbingOptions {
  shapes: PlumbingShape[];
  faces: number;
  costMs: number;
  startCameras: number;
  stepSeconds: number;
  budgetSeconds: number;
  frames?: string;
  video?: string;
  width: number;
  height: number;
  log: (line: string) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The bench's config: stand-in models, and every face embedded (the gate would skip most of a still face). */
function plumbingConfig(config: Config, options: PlumbingOptions): Config {
  return {
    ...config,
    models: { ...config.models, standIn: { faces: options.faces, costMs: options.costMs } },
    detect: { ...config.detect, embedGate: { ...config.detect.embedGate, reembedAfterMs: 0 } },
    bus: {
      ...config.bus,
      frameQueueCapacity: Math.max(config.bus.frameQueueCapacity, config.models.detectWorkers * 4),
    },
  };
}

/** A pipeline shape under test: its bus, how frames are counted, and how it is drained and closed. */
interface Harness {
  bus: MemoryBus;
  onFrame(listener: (frame: { captureTs: number }) => void): void;
  faces(): number;
  close(): Promise<void>;
}

async function detectAlignHarness(config: Config, vision: Vision): Promise<Harness> {
  const threads = config.models.inferenceWorkers
    ? await startVisionThreads(config, vision, { analyzer: true, embedder: false })
    : undefined;
  const bus = new MemoryBus({
    capacity: config.bus.queueCapacity,
    topicCapacity: { [Topics.frames]: config.bus.frameQueueCapacity },
  });
  const detect = createDetectAlign(config, { analyzer: threads?.analyzer ?? vision.analyzer });
  const runner = await new StageRunner(bus, detect.stage, detect.run).start();
  // The faces go nowhere: an embed stage would take them from here.
  const sink = await bus.subscribe(Topics.faces, { group: "sink", maxBatch: 256 }, async () => {});
  return {
    bus,
    onFrame: (l) => (detect.stage.onFrameProcessed = l),
    faces: () => detect.stage.stats.faces,
    close: async () => {
      await runner.stop();
      await sink.stop();
      await bus.close();
      await threads?.close();
    },
  };
}

async function embeddedHarness(config: Config, vision: Vision): Promise<Harness> {
  const store = new SqliteStore(":memory:");
  const pipeline = await EmbeddedPipeline.start(
    config,
    vision,
    { watchlist: store, history: store },
    () => {},
  );
  return {
    bus: pipeline.bus,
    onFrame: (l) => (pipeline.detect.onFrameProcessed = l),
    faces: () => pipeline.detect.stats.faces,
    close: async () => {
      await pipeline.close();
      store.close();
    },
  };
}

const WHAT: Record<PlumbingShape, string> = {
  "detect-align":
    "one detect-align process: frames → bus → detect-align (worker threads) → faces topic, as `vigil serve detect-align` runs it",
  embedded:
    "the embedded pipeline (`vigil run`): frames → detect-align → embed → match → SQLite store, all in one process",
};

async function measureShape(
  shape: PlumbingShape,
  config: Config,
  vision: Vision,
  frames: Yuv420Image[],
  options: PlumbingOptions,
): Promise<PlumbingShapeResult> {
  const harness =
    shape === "detect-align"
      ? await detectAlignHarness(config, vision)
      : await embeddedHarness(config, vision);
  const cameras = new LiveCameras(harness.bus, frames);
  const window = cameras.window;
  let byCapture = 0;
  let done = 0;
  let counting = false;
  harness.onFrame(({ captureTs }) => {
    if (captureTs >= window.start && captureTs < window.end) byCapture++;
    if (counting) done++;
  });
  const steps: PlumbingStep[] = [];
  const step = async (n: number) => {
    byCapture = 0;
    done = 0;
    window.start = Infinity;
    window.end = Infinity;
    const stop = cameras.run(n);
    await sleep(2000);
    const faces0 = harness.faces();
    const elu0 = performance.eventLoopUtilization();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    window.start = Date.now();
    counting = true;
    await sleep(options.stepSeconds * 1000);
    counting = false;
    window.end = Date.now();
    const wallMs = performance.now() - t0;
    const elu = performance.eventLoopUtilization(elu0);
    const cpu = process.cpuUsage(cpu0);
    const faces = harness.faces() - faces0;
    const finished = done;
    await stop();
    const drained = await drainWithin(() => harness.bus.drain());
    const { offered, dropped } = cameras.counts();
    const ratio = byCapture / Math.max(1, offered);
    const s: PlumbingStep = {
      cameras: n,
      offered,
      processedRatio: ratio,
      dropped,
      framesPerSecond: finished / (wallMs / 1000),
      facesPerSecond: faces / (wallMs / 1000),
      mainThreadMsPerFrame: (elu.utilization * wallMs) / Math.max(1, finished),
      cpuMsPerFrame: (cpu.user + cpu.system) / 1000 / Math.max(1, finished),
      pass: ratio >= 0.99,
    };
    options.log(
      `${shape} ${n} cameras: processed ${ratio.toFixed(3)} (${byCapture}/${offered}), ` +
        `${s.framesPerSecond.toFixed(0)} frames/s, ${s.facesPerSecond.toFixed(0)} faces/s; main thread ` +
        `${s.mainThreadMsPerFrame.toFixed(3)} ms/frame, CPU ${s.cpuMsPerFrame.toFixed(3)} ms/frame: ${s.pass ? "pass" : "FAIL"}`,
    );
    steps.push(s);
    return { pass: s.pass, drained };
  };
  try {
    const ramp = await rampCameras(options.startCameras, options.budgetSeconds, options.stepSeconds, step);
    const best = steps.filter((s) => s.pass).sort((a, b) => b.cameras - a.cameras)[0];
    return {
      shape,
      what: WHAT[shape],
      plumbingFramesPerSecond: best?.framesPerSecond ?? 0,
      maxCameras: best?.cameras ?? 0,
      mainThreadMsPerFrame: best?.mainThreadMsPerFrame ?? NaN,
      cpuMsPerFrame: best?.cpuMsPerFrame ?? NaN,
      steps,
      note: `${ramp.note}; frame slots made: ${cameras.slots}`,
    };
  } finally {
    await harness.close();
  }
}

/** Times `fn` over `n` runs after a warm-up; ms per run. */
function timeSync(n: number, fn: (i: number) => void): number {
  for (let i = 0; i < Math.min(n, 50); i++) fn(i);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fn(i);
  return (performance.now() - t0) / n;
}

/** Alignment and quality per face, on the stand-in's faces in the bench frames, on this thread. */
async function perFaceCosts(vision: Vision, frames: Yuv420Image[], gate: Config["quality"]) {
  const spec = vision.embedder;
  const faces: {
    frame: Yuv420Image;
    landmarks: [number, number][];
    box: { x: number; y: number; width: number; height: number };
  }[] = [];
  for (const frame of frames.slice(0, 8)) {
    for (const d of await vision.detector.detect(frame))
      faces.push({ frame, landmarks: d.landmarks, box: d.box });
  }
  if (faces.length === 0) throw new Error("the stand-in detector found no face to align");
  const crops = faces.map(
    (f) => alignFace(f.frame, f.landmarks, spec.template, spec.width, spec.height).crop,
  );
  const alignMs = timeSync(2000, (i) => {
    const f = faces[i % faces.length]!;
    alignFace(f.frame, f.landmarks, spec.template, spec.width, spec.height);
  });
  const qualityMs = timeSync(2000, (i) => {
    const f = faces[i % faces.length]!;
    assessQuality(
      { box: f.box, landmarks: f.landmarks, detScore: 0.95, crop: crops[i % crops.length]! },
      gate,
    );
  });
  return { alignMs, qualityMs };
}

/**
 * The cost of everything around the models: the real pipeline with both models replaced by stand-ins of known
 * cost (fixed faces and vectors; `costMs` a run, waiting without CPU), fed pre-decoded frames as live cameras
 * at 5 fps, ramped until fewer than 99 % of the frames are processed.
 */
export async function benchPlumbing(config: Config, options: PlumbingOptions): Promise<PlumbingBenchResult> {
  const benchConfig = plumbingConfig(config, options);
  const { frames, source } = await loadBenchFrames(config, {
    frames: options.frames,
    video: options.video,
    width: options.width,
    height: options.height,
    count: 16,
  });
  const vision = await loadVision(benchConfig, options.log);
  const { alignMs, qualityMs } = await perFaceCosts(vision, frames, benchConfig.quality);
  options.log(`align ${alignMs.toFixed(4)} ms/face, quality ${qualityMs.toFixed(4)} ms/face`);
  const bar = progress("bench plumbing", options.shapes.length);
  const shapes: PlumbingShapeResult[] = [];
  for (const shape of options.shapes) {
    shapes.push(await measureShape(shape, benchConfig, vision, frames, options));
    bar.tick();
  }
  bar.done();
  return {
    cores: availableParallelism(),
    frames: { source, width: frames[0]!.width, height: frames[0]!.height },
    standIn: { faces: options.faces, costMs: options.costMs },
    detectWorkers: benchConfig.models.detectWorkers,
    embedWorkers: benchConfig.models.embedWorkers,
    alignMsPerFace: alignMs,
    qualityMsPerFace: qualityMs,
    excluded:
      "decoding: frames are decoded before the run and only copied into a frame slot per camera frame, as ingest " +
      "copies ffmpeg's output; inference: the stand-in models wait without using the CPU (Atomics.wait), so the " +
      "process's CPU time is all plumbing",
    shapes,
    goals: PLUMBING_GOALS,
  };
}
