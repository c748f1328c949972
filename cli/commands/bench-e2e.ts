import os from "node:os";
import path from "node:path";
import type { Config } from "../../lib/config/index.ts";
import { startDecoder } from "../../lib/media/ffmpeg.ts";
import { progress } from "../../lib/telemetry/progress.ts";
import { loadVision, type Vision } from "../../lib/vision/inference/vision.ts";
import type { FrameImage } from "../../lib/vision/pixels/image.ts";
import type { Yuv420Image } from "../../lib/vision/pixels/yuv.ts";
import { RtspScene, tickSeconds, type WindowFigures } from "./rtsp-scene.ts";

/** A run's figures (its window's, less what the one-count run never printed) and what was run. */
export interface E2eBenchResult extends Omit<WindowFigures, "faces" | "embedded" | "decodeCpuMsPerFrame"> {
  cameras: number;
  /** All cameras started together, so a looped clip shows every new face on all of them at once. */
  synchronized: boolean;
  /** Frames per second each camera streams. */
  cameraFps: number;
  /** Frames per second the pipeline samples from each camera. */
  fps: number;
  video: string;
  flip: boolean;
}

export interface E2eOptions {
  video?: string;
  cameraFps: number;
  synchronized?: boolean;
}

/** Unmeasured seconds after the last camera connected: decoders start, tracks form, workers warm. */
const WARMUP_S = 6;

/**
 * N RTSP cameras (GStreamer's server looping a face video) at the configured fps through every stage, with a
 * watchlist that matches the person in the video; alerts use a 2 s cool-down so latency has many samples.
 */
export async function benchE2e(
  config: Config,
  vision: Vision,
  cameras: number,
  seconds: number,
  options: E2eOptions,
): Promise<E2eBenchResult> {
  const scene = await RtspScene.start(config, vision, "bench-e2e", {
    ...options,
    streamSeconds: seconds + WARMUP_S + 15,
  });
  try {
    const set = await scene.startCameras(cameras);
    const bar = progress(`bench e2e (${cameras} cameras)`, WARMUP_S + seconds);
    await tickSeconds(WARMUP_S, bar);
    const window = scene.openWindow(set);
    await tickSeconds(seconds, bar);
    const { faces: _faces, embedded: _embedded, decodeCpuMsPerFrame: _decode, ...f } = await window.finish();
    bar.done();
    return {
      cameras,
      synchronized: set.staggerMs === 0,
      cameraFps: options.cameraFps,
      fps: config.ingest.fps,
      video: path.basename(scene.source),
      flip: config.embed.flip,
      ...f,
    };
  } finally {
    await scene.close();
  }
}

/** What the models and the decoder cost per frame alone, measured on the frames the ramp's cameras serve. */
export interface ModelCosts {
  /** Frames of the served stream, decoded at the cameras' size and fps, that the models were timed on. */
  frames: number;
  facesPerFrame: number;
  /** Inference threads per session: a worker thread's sessions, so CPU time is the model's cost and no more. */
  inferenceThreads: number;
  /** CPU ms of `detector.detect` per frame, at the run's `detect.maxSide`. */
  detectMs: number;
  /** CPU ms of `embedder.embed` per face, one crop a call (at a few embeddings a second the pipeline's batches are ones and twos). */
  embedMsPerFace: number;
}

export interface RampStep extends WindowFigures {
  cameras: number;
  /** `alert` when the step had alerts; `face` (capture → embedded face) when it had none to time. */
  latencyBasis: "alert" | "face";
  /** p95 of the latency named by `latencyBasis`. */
  latencyMs: number;
  pass: boolean;
}

export interface MaxCamerasResult {
  video: string;
  cameraFps: number;
  fps: number;
  detectMaxSide: number;
  stepSeconds: number;
  limit: number;
  steps: RampStep[];
  /** The largest camera count that passed (processed ≥ 0.99, p95 latency ≤ 1 s); 0 when none did. */
  maxCameras: number;
  /** The camera count the ramp stopped at, failing; null when every count up to the limit passed. */
  firstFailure: number | null;
  cores: number;
  /** The machine's 1-minute load average when the ramp started and ended: on a shared machine it moves the figures. */
  loadAverage: { start: number; end: number };
  model: ModelCosts;
  /** Embedded faces per processed frame over every step: what the embed gate let through in this run. */
  embeddedFacesPerFrame: number;
  /** ffmpeg CPU per delivered frame, from the first (least loaded) step. */
  decodeMsPerFrame: number;
  /** CPU ms one camera frame costs in models and decoding: detect + embed × embedded faces per frame + decode. */
  modelMsPerFrame: number;
  /** floor(cores × 1000 / (fps × modelMsPerFrame)): cameras the models and the decoder alone would allow. */
  modelBoundCameras: number;
  /** maxCameras / modelBoundCameras; goal ≥ 0.8 (what the pipeline's own code and the machine leave). */
  ratio: number;
  goal: string;
  /**
   * Where the rest went, at the last passing step (the first step when none passed): Vigil's own CPU per
   * processed frame, the part of it that is not detection or embedding, and the cores the RTSP server playing
   * the cameras took (on a site the cameras are other machines).
   */
  atMax: { cameras: number; vigilMsPerFrame: number; overheadMsPerFrame: number; cameraServerCores: number };
  /** modelBoundCameras on the cores left after the camera server, and maxCameras against it. */
  modelBoundCamerasBesideCameraServer: number;
  ratioBesideCameraServer: number;
}

export interface MaxCamerasOptions extends E2eOptions {
  /** Largest camera count tried. */
  limit: number;
  /** Cameras added per step (the ramp is step, 2 × step, …). */
  step: number;
  /** Measured seconds per step, after the cameras connect and a 6 s warm-up. */
  stepSeconds: number;
  /** Each step's figures as it ends. */
  onStep?: (step: RampStep) => void;
}

export const MAX_CAMERAS_GOAL = "maxCameras / modelBoundCameras ≥ 0.8";
const PASS = { processedRatio: 0.99, latencyMs: 1000 };

/** Mean CPU ms per call of `fn` over the items, in whole passes of at least `minCalls` calls in all. */
async function cpuMsPerCall<T>(items: T[], fn: (item: T) => Promise<unknown>, minCalls: number) {
  for (const item of items.slice(0, 3)) await fn(item); // first runs allocate and warm the session
  const passes = Math.max(2, Math.ceil(minCalls / items.length));
  const cpu0 = process.cpuUsage();
  for (let p = 0; p < passes; p++) for (const item of items) await fn(item);
  const used = process.cpuUsage(cpu0);
  return (used.user + used.system) / 1000 / (passes * items.length);
}

/**
 * Detection and embedding costs on real frames of the scene's stream, decoded as ingest decodes them. Timed as
 * CPU time of this process on sessions with a worker's thread count, before any camera runs, so neither the
 * machine's other load nor an idle inference thread spinning counts.
 */
async function modelCosts(scene: RtspScene): Promise<ModelCosts> {
  const config = scene.config;
  const inferenceThreads = config.models.intraOpThreads || 1;
  const vision = await loadVision({
    ...config,
    models: { ...config.models, intraOpThreads: inferenceThreads },
  });
  const spec = scene.cameraSpec(0, scene.stream);
  const decoder = startDecoder(scene.stream, {
    fps: spec.fps,
    width: spec.width,
    height: spec.height,
    letterbox: true,
  });
  // One loop of the clip: every pose and face size the cameras show.
  const wanted = Math.min(40, Math.max(10, Math.ceil(scene.clipSeconds * spec.fps)));
  const frames: Yuv420Image[] = [];
  for await (const f of decoder.frames) {
    frames.push({ format: "yuv420p", width: f.width, height: f.height, data: new Uint8Array(f.data) });
    f.release(); // copied: the decoder may reuse its slot
    if (frames.length >= wanted) break;
  }
  decoder.kill("SIGTERM");
  await decoder.exited;
  if (frames.length === 0) throw new Error(`${scene.stream}: ffmpeg gave no frames`);
  const crops: FrameImage[] = [];
  for (const frame of frames) for (const face of await vision.analyzer.analyze(frame)) crops.push(face.crop);
  const detectMs = await cpuMsPerCall(frames, (f) => vision.detector.detect(f), 60);
  const embedMsPerFace = crops.length ? await cpuMsPerCall(crops, (c) => vision.embedder.embed([c]), 40) : 0;
  return {
    frames: frames.length,
    facesPerFrame: crops.length / frames.length,
    inferenceThreads,
    detectMs,
    embedMsPerFace,
  };
}

/**
 * Ramps the camera count (step, 2 × step, … up to the limit) on one pipeline, each count on freshly connected
 * cameras, until a count fails; `maxCameras` is the last that passed. Beside it, `modelBoundCameras`: what the
 * measured detect, embed and decode costs alone would allow on this machine's cores, so the ratio says how much
 * of the machine the rest of the pipeline (and whatever else runs here) takes.
 */
export async function benchE2eMaxCameras(
  config: Config,
  vision: Vision,
  options: MaxCamerasOptions,
): Promise<MaxCamerasResult> {
  if (options.step < 1 || options.limit < options.step)
    throw new RangeError(`a ramp of step ${options.step} up to ${options.limit} tries no camera count`);
  const staggerS = 4; // cameras connect spread over one loop of the clip, at most 4 s
  const scene = await RtspScene.start(config, vision, "bench-e2e-ramp", {
    ...options,
    streamSeconds: staggerS + WARMUP_S + options.stepSeconds + 15,
  });
  try {
    const loadStart = os.loadavg()[0]!;
    const model = await modelCosts(scene);
    const counts: number[] = [];
    for (let n = options.step; n <= options.limit; n += options.step) counts.push(n);
    // The total assumes every count passes; the ramp usually ends sooner, at its first failure.
    const bar = progress(
      `bench e2e --max-cameras (${options.step} to ${options.limit} cameras, step ${options.step})`,
      counts.length * (WARMUP_S + options.stepSeconds),
    );
    const steps: RampStep[] = [];
    for (const cameras of counts) {
      const set = await scene.startCameras(cameras);
      await tickSeconds(WARMUP_S, bar);
      const window = scene.openWindow(set);
      await tickSeconds(options.stepSeconds, bar);
      const f = await window.finish();
      // A step with no alert (the clip's person not matched in the window) still timed every embedded face.
      const latencyBasis = f.alerts > 0 ? "alert" : "face";
      const latencyMs = latencyBasis === "alert" ? f.p95AlertMs : f.p95FaceMs;
      const pass = f.processedRatio >= PASS.processedRatio && latencyMs <= PASS.latencyMs;
      const step: RampStep = { cameras, ...f, latencyBasis, latencyMs, pass };
      steps.push(step);
      options.onStep?.(step);
      if (!pass) break;
    }
    bar.done();
    const passed = steps.filter((s) => s.pass);
    const maxCameras = passed.length ? passed[passed.length - 1]!.cameras : 0;
    const failed = steps.find((s) => !s.pass);
    const processed = steps.reduce((s, x) => s + x.framesProcessed, 0);
    const embeddedFacesPerFrame = steps.reduce((s, x) => s + x.embedded, 0) / Math.max(1, processed);
    const decodeMsPerFrame = steps[0]!.decodeCpuMsPerFrame;
    const modelMsPerFrame = model.detectMs + model.embedMsPerFace * embeddedFacesPerFrame + decodeMsPerFrame;
    const cores = os.availableParallelism();
    const fps = config.ingest.fps;
    const modelBoundCameras = Math.floor((cores * 1000) / (fps * modelMsPerFrame));
    const basis = passed[passed.length - 1] ?? steps[0]!;
    const modelsInVigil = model.detectMs + model.embedMsPerFace * embeddedFacesPerFrame;
    const besideServer = Math.floor(((cores - basis.cameraServerCores) * 1000) / (fps * modelMsPerFrame));
    return {
      video: path.basename(scene.source),
      cameraFps: options.cameraFps,
      fps,
      detectMaxSide: config.detect.maxSide,
      stepSeconds: options.stepSeconds,
      limit: options.limit,
      steps,
      maxCameras,
      firstFailure: failed?.cameras ?? null,
      cores,
      loadAverage: { start: loadStart, end: os.loadavg()[0]! },
      model,
      embeddedFacesPerFrame,
      decodeMsPerFrame,
      modelMsPerFrame,
      modelBoundCameras,
      ratio: modelBoundCameras > 0 ? maxCameras / modelBoundCameras : 0,
      goal: MAX_CAMERAS_GOAL,
      atMax: {
        cameras: basis.cameras,
        vigilMsPerFrame: basis.vigilCpuMsPerFrame,
        overheadMsPerFrame: basis.vigilCpuMsPerFrame - modelsInVigil,
        cameraServerCores: basis.cameraServerCores,
      },
      modelBoundCamerasBesideCameraServer: besideServer,
      ratioBesideCameraServer: besideServer > 0 ? maxCameras / besideServer : 0,
    };
  } finally {
    await scene.close();
  }
}

const ms = (v: number) => (Number.isFinite(v) ? `${v.toFixed(0)} ms` : "—");

/** One step as a line: the printout's table row and the live line while the ramp runs. */
export function rampStepLine(s: RampStep): string {
  return (
    `${String(s.cameras).padStart(3)} cameras: processed ${s.processedRatio.toFixed(3)} ` +
    `(${s.framesProcessed}/${s.framesOffered}, ${s.framesDropped} dropped), ` +
    `${s.facesPerSecond.toFixed(1)} faces/s (${s.embeddedPerSecond.toFixed(1)}/s embedded), ` +
    `p95 ${s.latencyBasis === "alert" ? `capture → alert ${ms(s.latencyMs)} over ${s.alerts} alerts` : `capture → face ${ms(s.latencyMs)} (no alert in the window)`}, ` +
    `decode ${s.decodeCpuMsPerFrame.toFixed(1)} ms CPU/frame: ${s.pass ? "pass" : "FAIL"}`
  );
}

export function printMaxCameras(r: MaxCamerasResult, log: (line: string) => void = console.log) {
  log(
    `camera ramp: ${r.video} as 1280×720 at ${r.cameraFps} fps, sampled at ${r.fps} fps, ${r.stepSeconds} s measured per step; ` +
      `a step passes with processed ≥ ${PASS.processedRatio} and p95 capture → alert ≤ ${PASS.latencyMs} ms ` +
      `(capture → embedded face when a step has no alert); the ramp stops at its first failing step`,
  );
  for (const s of r.steps) log(rampStepLine(s));
  log(
    `maxCameras ${r.maxCameras}` +
      (r.firstFailure === null
        ? ` (every count up to the limit ${r.limit} passed: the limit stopped the ramp, so this is a lower bound)`
        : ` (${r.firstFailure} failed)`),
  );
  log(
    `model costs alone (CPU, ${r.model.inferenceThreads} inference thread, ${r.model.frames} frames of the stream at maxSide ${r.detectMaxSide}, ` +
      `${r.model.facesPerFrame.toFixed(2)} faces/frame): detect ${r.model.detectMs.toFixed(1)} ms/frame + ` +
      `embed ${r.model.embedMsPerFace.toFixed(1)} ms/face × ${r.embeddedFacesPerFrame.toFixed(3)} embedded faces/frame + ` +
      `decode ${r.decodeMsPerFrame.toFixed(1)} ms/frame (first step) = ${r.modelMsPerFrame.toFixed(1)} ms per camera frame`,
  );
  log(
    `modelBoundCameras ${r.modelBoundCameras} = floor(${r.cores} cores × 1000 / (${r.fps} fps × ${r.modelMsPerFrame.toFixed(1)} ms))`,
  );
  log(`maxCameras / modelBoundCameras = ${r.ratio.toFixed(2)} (goal ≥ 0.8)`);
  const m = r.atMax;
  log(
    `at ${m.cameras} cameras: Vigil's process ${m.vigilMsPerFrame.toFixed(1)} ms CPU a processed frame, of which ` +
      `${m.overheadMsPerFrame.toFixed(1)} ms is neither detection nor embedding as measured alone (the rest of the ` +
      `pipeline, and the models running slower beside ${m.cameras} decoders); the camera server took ` +
      `${m.cameraServerCores.toFixed(2)} cores`,
  );
  log(
    `beside the camera server: modelBoundCameras ${r.modelBoundCamerasBesideCameraServer} on ` +
      `${(r.cores - m.cameraServerCores).toFixed(2)} cores, ratio ${r.ratioBesideCameraServer.toFixed(2)}`,
  );
  log(
    `load average (1 min) ${r.loadAverage.start.toFixed(2)} at the start, ${r.loadAverage.end.toFixed(2)} at the end`,
  );
}
