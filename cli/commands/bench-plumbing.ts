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
import { yuv420ToBgr, type Yuv420Image } from "../../lib/vision/pixels/yuv.ts";
import { encodeJpeg } from "../../lib/vision/pixels/image.ts";
import { startVisionThreads } from "../../lib/vision/threads/vision-thread.ts";
import { createDetectAlign } from "../../services/detect-align/index.ts";
import { KafkaBroker } from "../../lib/testing/kafka/broker.ts";
import { EmbeddedPipeline } from "../pipeline.ts";
import { metricSum, namespace } from "./bench-pipeline.ts";
import { drainWithin, LiveCameras, loadBenchFrames, rampCameras } from "./camera-ramp.ts";

/** The figures the issue sets for one detect-align process on this machine's 2 cores, 720p frames. */
export const PLUMBING_GOALS = {
  mainThreadMsPerFrame: 0.5,
  cpuMsPerFrame: 2,
  alignMsPerFace: 0.1,
  plumbingFramesPerSecond: 1000,
} as const;

export type PlumbingShape = "detect-align" | "embedded" | "service";

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
  /** Frames per detector run when detection was batched (the GPU path), null when one frame a run. */
  batchedDetect: number | null;
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
  /** Batched detection (BatchedYuNet, the GPU path) rather than one frame a run (the CPU default). */
  batchedDetect: boolean;
  /** Kafka for the service shape; a local broker is started when none is given. */
  brokers?: string[];
  log: (line: string) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The bench's config: stand-in models; every face embedded (the gate would skip most of a still face); detection
 * batched as on a GPU provider unless asked otherwise, with room in the frame queue for a batch per worker.
 */
function plumbingConfig(config: Config, options: PlumbingOptions): Config {
  const batched = options.batchedDetect;
  const batch = batched ? config.models.gpu.detectBatch : config.detect.maxBatch;
  return {
    ...config,
    models: {
      ...config.models,
      standIn: { faces: options.faces, costMs: options.costMs },
      gpu: { ...config.models.gpu, batchedDetect: batched ? "on" : "off" },
    },
    detect: { ...config.detect, embedGate: { ...config.detect.embedGate, reembedAfterMs: 0 } },
    bus: {
      ...config.bus,
      frameQueueCapacity: Math.max(config.bus.frameQueueCapacity, config.models.detectWorkers * batch * 3),
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
    "one detect-align process: frames already in memory → bus → detect-align (worker threads) → faces topic; " +
    "ingest's copy of each frame out of its decoder is not in it (the embedded shape has it)",
  embedded:
    "the embedded pipeline (`vigil run`): frames → detect-align → embed → match → SQLite store, all in one process",
  service:
    "`vigil serve detect-align` as its own process on a local Kafka broker, fed JPEG frames as ingest publishes them on " +
    "Kafka (ingest.frameEncoding auto); its per-frame figures, from its metrics, include decoding that JPEG (libvips) " +
    "and converting it to yuv420p",
};

/** One camera count's figures, before they are judged. */
type StepFigures = Omit<PlumbingStep, "cameras" | "pass"> & { drained: boolean };

/** An in-process shape: frames counted as detect-align finishes them, costs from this process. */
function inProcessStepper(harness: Harness, cameras: LiveCameras, stepSeconds: number) {
  const window = cameras.window;
  let byCapture = 0;
  let done = 0;
  let counting = false;
  harness.onFrame(({ captureTs }) => {
    if (captureTs >= window.start && captureTs < window.end) byCapture++;
    if (counting) done++;
  });
  return async (n: number): Promise<StepFigures> => {
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
    await sleep(stepSeconds * 1000);
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
    return {
      offered,
      dropped,
      processedRatio: byCapture / Math.max(1, offered),
      framesPerSecond: finished / (wallMs / 1000),
      facesPerSecond: faces / (wallMs / 1000),
      mainThreadMsPerFrame: (elu.utilization * wallMs) / Math.max(1, finished),
      cpuMsPerFrame: (cpu.user + cpu.system) / 1000 / Math.max(1, finished),
      drained,
    };
  };
}

/** Ramps one shape and keeps the largest camera count at which 99 % of the frames were processed. */
async function rampShape(
  shape: PlumbingShape,
  step: (n: number) => Promise<StepFigures>,
  slots: () => number,
  options: PlumbingOptions,
): Promise<PlumbingShapeResult> {
  const steps: PlumbingStep[] = [];
  const ramp = await rampCameras(
    options.startCameras,
    options.budgetSeconds,
    options.stepSeconds,
    async (n) => {
      const { drained, ...f } = await step(n);
      const s: PlumbingStep = { cameras: n, ...f, pass: f.processedRatio >= 0.99 };
      options.log(
        `${shape} ${n} cameras: processed ${s.processedRatio.toFixed(3)} of ${s.offered} (${s.dropped} dropped by the cameras), ` +
          `${s.framesPerSecond.toFixed(0)} frames/s, ${s.facesPerSecond.toFixed(0)} faces/s; main thread ` +
          `${s.mainThreadMsPerFrame.toFixed(3)} ms/frame, CPU ${s.cpuMsPerFrame.toFixed(3)} ms/frame: ${s.pass ? "pass" : "FAIL"}`,
      );
      steps.push(s);
      return { pass: s.pass, drained };
    },
  );
  const best = steps.filter((s) => s.pass).sort((a, b) => b.cameras - a.cameras)[0];
  return {
    shape,
    what: WHAT[shape],
    plumbingFramesPerSecond: best?.framesPerSecond ?? 0,
    maxCameras: best?.cameras ?? 0,
    mainThreadMsPerFrame: best?.mainThreadMsPerFrame ?? NaN,
    cpuMsPerFrame: best?.cpuMsPerFrame ?? NaN,
    steps,
    note: `${ramp.note}; frame slots made: ${slots()}`,
  };
}

async function measureInProcess(
  shape: "detect-align" | "embedded",
  config: Config,
  vision: Vision,
  frames: Yuv420Image[],
  options: PlumbingOptions,
): Promise<PlumbingShapeResult> {
  const harness =
    shape === "detect-align"
      ? await detectAlignHarness(config, vision)
      : await embeddedHarness(config, vision);
  // The detect-align process takes frames already in memory (from its bus); ingest's copy from the decoder is
  // the embedded shape's, which runs ingest too.
  const cameras = new LiveCameras(
    harness.bus,
    frames,
    5,
    undefined,
    shape === "detect-align" ? "slot" : "frame",
  );
  try {
    return await rampShape(
      shape,
      inProcessStepper(harness, cameras, options.stepSeconds),
      () => cameras.slots,
      options,
    );
  } finally {
    await harness.close();
  }
}

/**
 * `vigil serve detect-align` on a local broker (or the one given): frames published here, the service's own
 * counters scraped from its metrics endpoint. Frames it dropped as stale, and frames the cameras here dropped
 * while a publish was still under way, are the losses; everything else offered was processed once the group's
 * lag is back to zero.
 */
async function measureService(config: Config, frames: Yuv420Image[], options: PlumbingOptions) {
  const broker = options.brokers ? undefined : await KafkaBroker.start();
  const brokers = options.brokers ?? [broker!.address];
  const ns = await namespace(config, brokers, "plumbing", {
    models: {
      standIn: config.models.standIn,
      detectWorkers: config.models.detectWorkers,
      inferenceWorkers: config.models.inferenceWorkers,
      gpu: { batchedDetect: config.models.gpu.batchedDetect },
    },
    detect: { embedGate: { reembedAfterMs: 0 } },
    log: { level: "warn" },
  });
  try {
    const detect = ns.start("detect-align");
    await detect.ready(120_000);
    let faces = 0;
    const sink = await ns.bus.subscribe(Topics.faces, { group: "bench-sink", maxBatch: 256 }, async (r) => {
      faces += r.length;
    });
    // At ingest's JPEG quality (ffmpeg's -q:v 3 is about libjpeg's 90).
    const jpegs = await Promise.all(frames.map((f) => encodeJpeg(yuv420ToBgr(f), 90)));
    const cameras = new LiveCameras(ns.bus, frames, 5, jpegs);
    const scrape = async () => {
      const m = await detect.metrics();
      return {
        frames: metricSum(m, "vigil_frames_processed_total"),
        stale: metricSum(m, "vigil_frames_stale_total"),
        cpuS: metricSum(m, "vigil_process_cpu_seconds_total"),
        loopS: metricSum(m, "vigil_event_loop_active_seconds"),
      };
    };
    const lag = async () => (await ns.bus.lag("detect-align", Topics.frames)).reduce((n, p) => n + p.lag, 0);
    const step = async (n: number): Promise<StepFigures> => {
      const window = cameras.window;
      window.start = Infinity;
      window.end = Infinity;
      const stop = cameras.run(n);
      await sleep(3000);
      const faces0 = faces;
      const a = await scrape();
      const t0 = performance.now();
      window.start = Date.now();
      await sleep(options.stepSeconds * 1000);
      window.end = Date.now();
      const b = await scrape();
      const wallS = (performance.now() - t0) / 1000;
      const stepFaces = faces - faces0;
      await stop();
      let drained = false;
      for (const until = Date.now() + 30_000; Date.now() < until && !drained; await sleep(500))
        drained = (await lag()) === 0;
      const c = await scrape();
      const { offered, dropped } = cameras.counts();
      const done = b.frames - a.frames;
      return {
        offered,
        dropped,
        // Stale drops counted to the end of the drain: a frame of the window can still go stale after it.
        processedRatio: (offered - dropped - (c.stale - a.stale)) / Math.max(1, offered),
        framesPerSecond: done / wallS,
        facesPerSecond: stepFaces / wallS,
        mainThreadMsPerFrame: ((b.loopS - a.loopS) * 1000) / Math.max(1, done),
        cpuMsPerFrame: ((b.cpuS - a.cpuS) * 1000) / Math.max(1, done),
        drained,
      };
    };
    try {
      return await rampShape("service", step, () => cameras.slots, options);
    } finally {
      await sink.stop();
    }
  } finally {
    await ns.close();
    await broker?.destroy();
  }
}

/**
 * Times `fn` after a warm-up: the median of 11 rounds of `n / 11` runs, ms per run. One long round took
 * whatever else the machine did in it (a 2-vCPU VM's neighbours, the collector): single runs of the same code
 * ranged over a factor of two.
 */
function timeSync(n: number, fn: (i: number) => void): number {
  for (let i = 0; i < Math.min(n, 50); i++) fn(i);
  const rounds = 11;
  const per = Math.ceil(n / rounds);
  const times: number[] = [];
  for (let r = 0, i = 0; r < rounds; r++) {
    const t0 = performance.now();
    for (const end = i + per; i < end; i++) fn(i);
    times.push((performance.now() - t0) / per);
  }
  return times.sort((a, b) => a - b)[rounds >> 1]!;
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
    shapes.push(
      shape === "service"
        ? await measureService(benchConfig, frames, options)
        : await measureInProcess(shape, benchConfig, vision, frames, options),
    );
    bar.tick();
  }
  bar.done();
  return {
    cores: availableParallelism(),
    frames: { source, width: frames[0]!.width, height: frames[0]!.height },
    standIn: { faces: options.faces, costMs: options.costMs },
    batchedDetect: vision.analyzer.detectBatch ?? null,
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
