import { execFileSync, spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { performance } from "node:perf_hooks";
import path from "node:path";
import type { Config } from "../../lib/config/index.ts";
import { cropLargestFace } from "../../lib/media/sample-media.ts";
import { SqliteStore } from "../../lib/store/sqlite-store.ts";
import { tempDirFor } from "../../lib/util/temp.ts";
import { BatchedYuNet } from "../../lib/vision/inference/batched-yunet.ts";
import { nvidiaGpu, type NvidiaGpu } from "../../lib/vision/inference/gpu-host.ts";
import {
  createSession,
  ExecutionProviderError,
  ort,
  type ExecutionProvider,
} from "../../lib/vision/inference/runtime.ts";
import { loadVision, modelStoreFor } from "../../lib/vision/inference/vision.ts";
import { modelSpec } from "../../lib/vision/models/registry.ts";
import { encodeJpeg, fillTensor, type FrameImage } from "../../lib/vision/pixels/image.ts";
import { yuv420ToBgr, type Yuv420Image } from "../../lib/vision/pixels/yuv.ts";
import { enrolPhotos } from "../../lib/watchlist/enrol.ts";
import { logToStderr } from "../context.ts";
import type { VigilEvent } from "../../lib/events/events.ts";
import { EmbeddedPipeline } from "../pipeline.ts";
import { percentile } from "./bench-vision.ts";
import { drainWithin, LiveCameras, loadBenchFrames, rampCameras } from "./camera-ramp.ts";

export interface GpuBenchOptions {
  /** Pre-decoded frames: raw yuv420p, `frameWidth`×`frameHeight` each, concatenated (hosts without ffmpeg). */
  frames?: string;
  frameWidth: number;
  frameHeight: number;
  /** A face video decoded with ffmpeg when no frames file is given. */
  video?: string;
  /** Seconds each throughput figure is timed for (after warm-up). */
  measureS: number;
  cpu: boolean;
  decode: boolean;
  e2e: boolean;
  /** Wall-clock budget for the camera ramp. */
  e2eBudgetS: number;
  /** Unmeasured seconds of traffic before the ramp: each worker's first run of a shape is slow on a GPU. */
  e2eWarmupS: number;
  e2eSeconds: number;
  startCameras: number;
  detectWorkers: number;
  log: (line: string) => void;
}

export interface Throughput {
  batch: number;
  perSecond: number;
  msPerRun: number;
}

export interface ProviderFigures {
  provider: ExecutionProvider;
  detect: Throughput[];
  /** Best frames/s over the batch sizes, tensor prepared (the model and its transfers only). */
  detectFps: number;
  /** One thread doing it all at the configured batch: tensor fill from yuv420p, run, decode. */
  detectFpsWithPrep: number;
  embed: Throughput[];
  embedFacesPerSecond: number;
}

export interface E2eStep {
  cameras: number;
  offered: number;
  processed: number;
  processedRatio: number;
  dropped: number;
  alerts: number;
  p95AlertMs: number;
  facesPerSecond: number;
  /** Share of the measured window the main thread was busy (bus, frame copies, stages' JavaScript, match). */
  mainThreadBusy: number;
  pass: boolean;
}

export interface GpuBenchResult {
  gpu: NvidiaGpu | null;
  /** The GPU provider measured, or null when none could start (`providerError` says why). */
  provider: ExecutionProvider | null;
  providerError?: string;
  detectInput: { width: number; height: number };
  frames: { source: string; count: number; width: number; height: number; faces: number };
  /** Headline figures on the GPU provider (CPU's when no GPU provider started). */
  detectFps: number;
  embedFacesPerSecond: number;
  camerasAt5fps: number | null;
  figures: ProviderFigures[];
  /** GPU vs CPU on the same inputs: detections and embeddings must agree. */
  parity?: { maxLandmarkDeltaPx: number; facesCpu: number; facesGpu: number; minEmbeddingCosine: number };
  decode: {
    method: "nvdec" | "software" | null;
    streams1080p25: number | null;
    fps: number | null;
    note: string;
  };
  e2e: {
    provider: ExecutionProvider;
    feed: string;
    detectWorkers: number;
    /**
     * Frames per detector run when the pipeline batched detection (models.gpu.batchedDetect: BatchedYuNet,
     * letterboxed to detectInput), null when it ran one frame a run.
     */
    batchedDetect: number | null;
    steps: E2eStep[];
    note: string;
  } | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Frames as ingest hands them to detection: yuv420p, from a raw file or decoded here with ffmpeg. */
function loadFrames(config: Config, options: GpuBenchOptions) {
  return loadBenchFrames(config, {
    frames: options.frames,
    video: options.video,
    width: options.frameWidth,
    height: options.frameHeight,
  });
}

/** Runs `fn` (which does `items` of work) repeatedly for about `seconds` after a warm-up: items per second. */
async function throughput(fn: () => Promise<unknown>, items: number, seconds: number): Promise<Throughput> {
  for (let i = 0; i < 3; i++) await fn();
  let runs = 0;
  const start = performance.now();
  while (runs < 3 || performance.now() - start < seconds * 1000) {
    await fn();
    runs++;
  }
  const ms = (performance.now() - start) / runs;
  return { batch: items, perSecond: (items * 1000) / ms, msPerRun: ms };
}

const best = (xs: Throughput[]) => Math.max(...xs.map((x) => x.perSecond));

async function measureProvider(
  config: Config,
  provider: ExecutionProvider,
  frames: Yuv420Image[],
  crop: FrameImage,
  batches: { detect: number[]; embed: number[] },
  options: GpuBenchOptions,
): Promise<ProviderFigures> {
  const models = { ...config.models, executionProvider: provider };
  const store = modelStoreFor(config, options.log);
  const detectorSpec = modelSpec("yunet-2026may");
  const maxBatch = Math.max(...batches.detect, config.models.gpu.detectBatch);
  const detector = await BatchedYuNet.open(
    store.artifactPath(detectorSpec),
    detectorSpec,
    models,
    config.detect,
    { width: config.models.gpu.detectWidth, height: config.models.gpu.detectHeight, maxBatch },
    // Exact batch sizes: these figures are per batch size, not per bucket.
    { dataDir: config.dataDir, bucket: false },
  );
  const cycle = (n: number) => Array.from({ length: n }, (_, i) => frames[i % frames.length]!);
  const detect: Throughput[] = [];
  for (const b of batches.detect) {
    await detector.fill(cycle(b));
    detect.push(await throughput(() => detector.run(b), b, options.measureS));
    options.log(`${provider} detect batch ${b}: ${detect.at(-1)!.perSecond.toFixed(0)} frames/s`);
  }
  const prepBatch = config.models.gpu.detectBatch;
  const prepFrames = cycle(prepBatch);
  const withPrep = await throughput(() => detector.detectBatch(prepFrames), prepBatch, options.measureS);
  await detector.release();

  const embedSpec = modelSpec("reid-0095");
  const session = await createSession(store.artifactPath(embedSpec), models, {
    dataDir: config.dataDir,
    bucket: false,
  });
  const plane = 3 * crop.width * crop.height;
  const maxEmbed = Math.max(...batches.embed);
  const tensor = new Float32Array(maxEmbed * plane);
  for (let i = 0; i < maxEmbed; i++) fillTensor(crop, embedSpec.input, tensor, i * plane);
  const embed: Throughput[] = [];
  for (const b of batches.embed) {
    const feeds = {
      [session.inputNames[0]!]: new ort.Tensor("float32", tensor.subarray(0, b * plane), [
        b,
        3,
        crop.height,
        crop.width,
      ]),
    };
    embed.push(await throughput(() => session.run(feeds), b, options.measureS));
    options.log(`${provider} embed batch ${b}: ${embed.at(-1)!.perSecond.toFixed(0)} faces/s`);
  }
  await session.release();
  return {
    provider,
    detect,
    detectFps: best(detect),
    detectFpsWithPrep: withPrep.perSecond,
    embed,
    embedFacesPerSecond: best(embed),
  };
}

/** Detections and embeddings of the same frames and crops on two providers. */
async function parity(config: Config, gpu: ExecutionProvider, frames: Yuv420Image[], crop: FrameImage) {
  const store = modelStoreFor(config, () => {});
  const spec = modelSpec("yunet-2026may");
  const size = { width: config.models.gpu.detectWidth, height: config.models.gpu.detectHeight, maxBatch: 8 };
  const sample = frames.slice(0, 8);
  const run = async (provider: ExecutionProvider) => {
    const models = { ...config.models, executionProvider: provider };
    const det = await BatchedYuNet.open(store.artifactPath(spec), spec, models, config.detect, size);
    const found = await det.detectBatch(sample);
    await det.release();
    const embedSpec = modelSpec("reid-0095");
    const session = await createSession(store.artifactPath(embedSpec), models);
    const t = new Float32Array(3 * crop.width * crop.height);
    fillTensor(crop, embedSpec.input, t, 0);
    const out = await session.run({
      [session.inputNames[0]!]: new ort.Tensor("float32", t, [1, 3, crop.height, crop.width]),
    });
    await session.release();
    return { found, vector: out[session.outputNames[0]!]!.data as Float32Array };
  };
  const a = await run("cpu");
  const b = await run(gpu);
  let maxDelta = 0;
  a.found.forEach((faces, i) =>
    faces.forEach((f, j) => {
      const g = b.found[i]![j];
      if (!g) return;
      f.landmarks.forEach((p, k) => {
        const q = g.landmarks[k]!;
        maxDelta = Math.max(maxDelta, Math.hypot(p[0] - q[0], p[1] - q[1]));
      });
    }),
  );
  let dot = 0,
    na = 0,
    nb = 0;
  for (let i = 0; i < a.vector.length; i++) {
    dot += a.vector[i]! * b.vector[i]!;
    na += a.vector[i]! ** 2;
    nb += b.vector[i]! ** 2;
  }
  return {
    maxLandmarkDeltaPx: maxDelta,
    facesCpu: a.found.flat().length,
    facesGpu: b.found.flat().length,
    minEmbeddingCosine: dot / Math.sqrt(na * nb),
  };
}

/**
 * How many 1080p25 H.264 streams one machine decodes in real time: parallel ffmpeg decoders of a generated
 * 1080p clip, on NVDEC when `-hwaccel cuda` works, else in software (said so).
 */
async function decodeStreams(config: Config, log: (l: string) => void): Promise<GpuBenchResult["decode"]> {
  try {
    execFileSync("ffmpeg", ["-version"], { stdio: "ignore" });
  } catch {
    return {
      method: null,
      streams1080p25: null,
      fps: null,
      note: "no ffmpeg on this host: hardware decoding not measured",
    };
  }
  const dir = tempDirFor(config, "bench-gpu-decode");
  const clip = path.join(dir, "1080p25.mp4");
  if (!existsSync(clip)) {
    execFileSync("ffmpeg", [
      "-y",
      "-loglevel",
      "error",
      "-f",
      "lavfi",
      "-i",
      "testsrc2=size=1920x1080:rate=25",
      "-t",
      "10",
      "-c:v",
      "libx264",
      "-preset",
      "veryfast",
      "-g",
      "25",
      "-bf",
      "0",
      "-pix_fmt",
      "yuv420p",
      clip,
    ]);
  }
  const runAll = (parallel: number, hw: boolean) =>
    Promise.all(
      Array.from(
        { length: parallel },
        () =>
          new Promise<{ ok: boolean; stderr: string }>((resolve) => {
            const args = [
              "-hide_banner",
              ...(hw ? ["-hwaccel", "cuda", "-hwaccel_output_format", "cuda"] : ["-threads", "1"]),
              "-i",
              clip,
              "-f",
              "null",
              "-",
            ];
            const p = spawn("ffmpeg", args, { stdio: ["ignore", "ignore", "pipe"] });
            let stderr = "";
            p.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
            p.on("exit", (code) => resolve({ ok: code === 0, stderr }));
          }),
      ),
    );
  const framesPerClip = 250;
  const hw = nvidiaGpu() !== undefined;
  const parallel = hw ? 16 : Math.max(1, availableParallelism());
  const t0 = performance.now();
  let results = await runAll(parallel, hw);
  let method: "nvdec" | "software" = hw ? "nvdec" : "software";
  let note = hw
    ? "NVDEC via -hwaccel cuda, frames left on the GPU"
    : "no NVIDIA GPU: software decoding, one thread per stream";
  let elapsed = (performance.now() - t0) / 1000;
  if (results.some((r) => !r.ok)) {
    const reason = results
      .find((r) => !r.ok)!
      .stderr.split("\n")
      .filter(Boolean)
      .at(-1);
    log(`hardware decoding failed (${reason}); measuring software decoding instead`);
    method = "software";
    note = `NVDEC failed (${reason}); software decoding, one thread per stream`;
    const t1 = performance.now();
    results = await runAll(Math.max(1, availableParallelism()), false);
    elapsed = (performance.now() - t1) / 1000;
  }
  const fps = (results.length * framesPerClip) / elapsed;
  return { method, streams1080p25: fps / 25, fps, note };
}

/**
 * Cameras fed at 5 fps through the embedded pipeline (every stage, worker threads), with the frames ingest
 * would deliver; the count doubles while the pipeline keeps up, then is bisected between the last pass and the
 * first failure, within the time budget.
 */
async function cameraRamp(
  config: Config,
  provider: ExecutionProvider,
  frames: Yuv420Image[],
  options: GpuBenchOptions,
): Promise<NonNullable<GpuBenchResult["e2e"]> & { camerasAt5fps: number | null }> {
  const detectWorkers = options.detectWorkers;
  const gpu = provider !== "cpu";
  const e2eConfig: Config = {
    ...config,
    models: {
      ...config.models,
      executionProvider: provider,
      inferenceWorkers: true,
      detectWorkers,
      embedWorkers: 2,
    },
    detect: { ...config.detect, maxBatch: gpu ? config.models.gpu.detectBatch : config.detect.maxBatch },
    embed: { ...config.embed, maxBatch: gpu ? config.models.gpu.embedBatch : config.embed.maxBatch },
    match: { ...config.match, alertCooldownS: 2 },
    // Room for every detect worker to hold a batch; live cameras still drop rather than queue behind it.
    bus: { ...config.bus, frameQueueCapacity: Math.max(config.bus.frameQueueCapacity, detectWorkers * 4) },
  };
  const dir = tempDirFor(config, "bench-gpu-e2e");
  const vision = await loadVision(e2eConfig, options.log);
  const still = path.join(dir, "still.jpg");
  writeFileSync(still, await encodeJpeg(yuv420ToBgr(frames[0]!), 95));
  const photo = path.join(dir, "watchlist", "subject", "subject.jpg");
  await cropLargestFace(vision, still, photo);
  const store = new SqliteStore(":memory:");
  await enrolPhotos(vision, store, { id: "subject", name: "subject" }, [photo]);

  let measuring = false;
  const alertLatency: number[] = [];
  const onEvent = (e: VigilEvent) => {
    if (measuring && e.type === "alert") alertLatency.push(Date.now() - e.ts);
  };
  const pipeline = await EmbeddedPipeline.start(
    e2eConfig,
    vision,
    { watchlist: store, history: store },
    onEvent,
  );
  const cameras = new LiveCameras(pipeline.bus, frames);
  const window = cameras.window;
  let processed = 0;
  pipeline.detect.onFrameProcessed = ({ captureTs }) => {
    if (captureTs >= window.start && captureTs < window.end) processed++;
  };

  const steps: E2eStep[] = [];
  const stepOnce = async (n: number) => {
    alertLatency.length = 0;
    processed = 0;
    window.start = Infinity;
    window.end = Infinity;
    const stop = cameras.run(n);
    await sleep(3000);
    const f0 = pipeline.detect.stats.faces;
    const elu0 = performance.eventLoopUtilization();
    window.start = Date.now();
    measuring = true;
    await sleep(options.e2eSeconds * 1000);
    measuring = false;
    window.end = Date.now();
    const busy = performance.eventLoopUtilization(elu0).utilization;
    const faces = pipeline.detect.stats.faces - f0;
    await stop();
    const drained = await drainWithin(() => pipeline.drain());
    const { offered, dropped } = cameras.counts();
    const sorted = [...alertLatency].sort((a, b) => a - b);
    const ratio = processed / Math.max(1, offered);
    const p95 = percentile(sorted, 0.95);
    const step = {
      cameras: n,
      offered,
      processed,
      processedRatio: ratio,
      dropped,
      alerts: sorted.length,
      p95AlertMs: p95,
      facesPerSecond: faces / options.e2eSeconds,
      mainThreadBusy: busy,
      pass: ratio >= 0.99 && sorted.length > 0 && p95 <= 1000,
    };
    options.log(
      `e2e ${n} cameras: processed ${ratio.toFixed(3)} (${processed}/${offered}), ` +
        `p95 capture→alert ${Number.isFinite(p95) ? p95.toFixed(0) : "—"} ms over ${sorted.length} alerts, ` +
        `main thread ${(busy * 100).toFixed(0)} % busy: ${step.pass ? "pass" : "FAIL"}`,
    );
    steps.push(step);
    return { pass: step.pass, drained };
  };

  // Each detect worker's first frame on a GPU waits for cuDNN's algorithm search (seconds); that is start-up,
  // not throughput, so it happens before anything is measured.
  let drained = true;
  if (options.e2eWarmupS > 0) {
    const stop = cameras.run(options.startCameras);
    await sleep(options.e2eWarmupS * 1000);
    await stop();
    drained = await drainWithin(() => pipeline.drain());
    options.log(`e2e warm-up: ${options.e2eWarmupS} s of ${options.startCameras} cameras`);
  }
  let ramp: Awaited<ReturnType<typeof rampCameras>>;
  try {
    ramp = drained
      ? await rampCameras(options.startCameras, options.e2eBudgetS, options.e2eSeconds, stepOnce)
      : { passN: 0, failN: Infinity, drained, note: "the pipeline had not drained 30 s after the warm-up" };
  } finally {
    await pipeline.close();
    store.close();
  }
  return {
    provider,
    feed:
      `pre-decoded ${frames[0]!.width}×${frames[0]!.height} yuv420p frames (what ingest delivers from a 1080p camera ` +
      `at the default ingest size), published as live cameras at 5 fps; decoding is not part of this figure`,
    detectWorkers,
    batchedDetect: vision.analyzer.detectBatch ?? null,
    steps,
    note: ramp.note,
    camerasAt5fps: ramp.passN > 0 ? ramp.passN : null,
  };
}

export async function benchGpu(config: Config, options: GpuBenchOptions): Promise<GpuBenchResult> {
  const gpu = nvidiaGpu() ?? null;
  const wanted: ExecutionProvider = config.models.executionProvider === "tensorrt" ? "tensorrt" : "cuda";
  const { frames, source } = await loadFrames(config, options);
  // A real aligned face from the frames, so embedding timings run on a face, and detection finds some.
  const cpuVision = await loadVision(
    { ...config, models: { ...config.models, executionProvider: "cpu" } },
    options.log,
  );
  let crop: FrameImage | undefined;
  let facesInFrames = 0;
  for (const f of frames.slice(0, 8)) {
    const faces = await cpuVision.analyzer.analyze(f);
    facesInFrames += faces.length;
    crop ??= faces[0]?.crop;
  }
  const embedSpec = modelSpec("reid-0095");
  crop ??= {
    width: embedSpec.input.width!,
    height: embedSpec.input.height!,
    data: new Uint8Array(embedSpec.input.width! * embedSpec.input.height! * 3).fill(128),
  };

  let provider: ExecutionProvider | null = wanted;
  let providerError: string | undefined;
  const figures: ProviderFigures[] = [];
  try {
    figures.push(
      await measureProvider(
        config,
        wanted,
        frames,
        crop,
        { detect: [1, 4, 8, 16, 32, 64], embed: [1, 16, 64, 128, 256] },
        options,
      ),
    );
  } catch (err) {
    if (!(err instanceof ExecutionProviderError)) throw err;
    provider = null;
    providerError = err.message;
    options.log(`no ${wanted} provider: ${err.message}`);
  }
  if (options.cpu || provider === null) {
    figures.push(
      await measureProvider(config, "cpu", frames, crop, { detect: [1, 8, 32], embed: [1, 16, 64] }, options),
    );
  }
  const par = provider ? await parity(config, provider, frames, crop) : undefined;
  const decode = options.decode
    ? await decodeStreams(config, options.log)
    : { method: null, streams1080p25: null, fps: null, note: "not asked for (--no-decode)" };
  const ramp = options.e2e ? await cameraRamp(config, provider ?? "cpu", frames, options) : null;
  const head = figures[0]!;
  return {
    gpu,
    provider,
    ...(providerError ? { providerError } : {}),
    detectInput: { width: config.models.gpu.detectWidth, height: config.models.gpu.detectHeight },
    frames: {
      source,
      count: frames.length,
      width: frames[0]!.width,
      height: frames[0]!.height,
      faces: facesInFrames,
    },
    detectFps: head.detectFps,
    embedFacesPerSecond: head.embedFacesPerSecond,
    camerasAt5fps: ramp?.camerasAt5fps ?? null,
    figures,
    ...(par ? { parity: par } : {}),
    decode,
    e2e: ramp
      ? {
          provider: ramp.provider,
          feed: ramp.feed,
          detectWorkers: ramp.detectWorkers,
          batchedDetect: ramp.batchedDetect,
          steps: ramp.steps,
          note: ramp.note,
        }
      : null,
  };
}

export function defaultDetectWorkers(): number {
  // The main thread (bus, match, frame copies) and two embed workers need cores of their own.
  return Math.max(2, Math.min(12, availableParallelism() - 4));
}

export interface BenchGpuCliOptions {
  json?: boolean;
  out?: string;
  frames?: string;
  frameSize: string;
  video?: string;
  measureSeconds: number;
  cpu: boolean;
  decode: boolean;
  e2e: boolean;
  e2eBudget: number;
  e2eWarmup: number;
  e2eSeconds: number;
  startCameras: number;
  detectWorkers?: number;
}

/** `vigil bench gpu`: runs the bench, prints a summary (or one JSON object) and writes the JSON to --out. */
export async function runBenchGpuCommand(config: Config, options: object): Promise<GpuBenchResult> {
  // Commander's parsed options, shaped by the command's declaration in cli/main.ts.
  const opts = options as BenchGpuCliOptions;
  const size = /^(\d+)x(\d+)$/.exec(opts.frameSize);
  if (!size) throw new Error(`--frame-size ${opts.frameSize}: expected WIDTHxHEIGHT`);
  const r = await benchGpu(config, {
    frames: opts.frames,
    frameWidth: Number(size[1]),
    frameHeight: Number(size[2]),
    video: opts.video,
    measureS: opts.measureSeconds,
    cpu: opts.cpu,
    decode: opts.decode,
    e2e: opts.e2e,
    e2eBudgetS: opts.e2eBudget,
    e2eWarmupS: opts.e2eWarmup,
    e2eSeconds: opts.e2eSeconds,
    startCameras: opts.startCameras,
    detectWorkers: opts.detectWorkers ?? defaultDetectWorkers(),
    log: logToStderr,
  });
  if (opts.out) writeFileSync(opts.out, JSON.stringify(r, null, 2) + "\n");
  if (opts.json) {
    console.log(JSON.stringify(r));
    return r;
  }
  const f0 = (v: number | null | undefined) => (v === null || v === undefined ? "—" : v.toFixed(0));
  console.log(
    `GPU: ${r.gpu ? `${r.gpu.name} (driver ${r.gpu.driver})` : "none"}; provider ${r.provider ?? `none (${r.providerError?.split("\n")[0]})`}`,
  );
  console.log(`frames: ${r.frames.source}, ${r.frames.count} × ${r.frames.width}×${r.frames.height}`);
  for (const f of r.figures) {
    console.log(
      `${f.provider.padEnd(8)} detect ${r.detectInput.width}×${r.detectInput.height}: ` +
        f.detect.map((t) => `b${t.batch} ${f0(t.perSecond)}`).join(", ") +
        ` frames/s; with yuv→tensor on one thread ${f0(f.detectFpsWithPrep)}`,
    );
    console.log(
      `${f.provider.padEnd(8)} embed: ${f.embed.map((t) => `b${t.batch} ${f0(t.perSecond)}`).join(", ")} faces/s`,
    );
  }
  if (r.parity) {
    console.log(
      `GPU vs CPU: landmarks within ${r.parity.maxLandmarkDeltaPx.toFixed(3)} px (${r.parity.facesGpu}/${r.parity.facesCpu} faces), embedding cosine ${r.parity.minEmbeddingCosine.toFixed(6)}`,
    );
  }
  console.log(
    `decode: ${r.decode.method ?? "—"} ${r.decode.streams1080p25 === null ? "" : `${r.decode.streams1080p25.toFixed(1)} streams of 1080p25 `}(${r.decode.note})`,
  );
  if (r.e2e) {
    for (const s of r.e2e.steps) {
      console.log(
        `e2e ${String(s.cameras).padStart(4)} cameras: processed ${s.processedRatio.toFixed(3)}, p95 alert ${f0(s.p95AlertMs)} ms, ${s.alerts} alerts: ${s.pass ? "pass" : "FAIL"}`,
      );
    }
    console.log(`feed: ${r.e2e.feed}`);
    console.log(
      `e2e detection: ${r.e2e.batchedDetect === null ? "one frame a run" : `batched, up to ${r.e2e.batchedDetect} frames a run at ${r.detectInput.width}×${r.detectInput.height}`} (${r.e2e.provider}, ${r.e2e.detectWorkers} detect workers)`,
    );
  }
  console.log(
    `detectFps ${f0(r.detectFps)}, embedFacesPerSecond ${f0(r.embedFacesPerSecond)}, camerasAt5fps ${r.camerasAt5fps ?? "—"}`,
  );
  return r;
}
