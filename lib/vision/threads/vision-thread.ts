import type { Worker } from "node:worker_threads";
import type { Config } from "../../config/index.ts";
import { siblingModule, startTsWorker } from "../../util/ts-worker.ts";
import type { Embedder } from "../inference/embedder.ts";
import type { AlignedFace, AnalyzeJob, AnalyzeOptions, FrameAnalyzer } from "../inference/face-analyzer.ts";
import type { EncodedFrame, FrameImage } from "../pixels/image.ts";
import type { Vision } from "../inference/vision.ts";

export interface VisionWorkerData {
  config: Config;
  role: "analyzer" | "embedder";
}

export type VisionJob =
  | { op: "analyze"; image: FrameImage | EncodedFrame; options?: AnalyzeOptions }
  | { op: "analyzeBatch"; jobs: AnalyzeJob[] }
  | { op: "embed"; crops: FrameImage[] };
export type VisionRequest = VisionJob & { id: number };

export type VisionResponse =
  | { id: number; ok: true; faces: AlignedFace[] }
  | { id: number; ok: true; batch: AlignedFace[][] }
  | { id: number; ok: true; vectors: Float32Array[] }
  | { id: number; ok: false; error: { name: string; message: string } };

interface Pending {
  resolve: (r: VisionResponse) => void;
  reject: (e: Error) => void;
}

export class VisionWorkerError extends Error {
  override name = "VisionWorkerError";
}

/**
 * One worker thread with its own ONNX Runtime sessions. onnxruntime-node runs inference synchronously on the
 * calling thread, so in one thread detection, embedding and every stage's JavaScript take turns; in workers
 * they overlap and use every core. A worker that dies fails its pending requests (the bus redelivers them)
 * and is started afresh on the next request.
 */
export class VisionThread {
  private worker: Worker | undefined;
  private ready: Promise<void> | undefined;
  private pending = new Map<number, Pending>();
  private nextId = 1;
  private outstanding = 0;
  private closed = false;

  constructor(
    private readonly name: string,
    private readonly config: Config,
    private readonly role: VisionWorkerData["role"],
  ) {}

  /** Starts the worker now, so model loading happens before the first frame rather than during it. */
  start(): Promise<void> {
    if (this.closed) return Promise.reject(new VisionWorkerError(`${this.name} worker is closed`));
    if (this.ready) return this.ready;
    const worker = startTsWorker(siblingModule("vision-worker", import.meta.url), {
      config: this.config,
      role: this.role,
    } satisfies VisionWorkerData);
    this.worker = worker;
    this.ready = new Promise<void>((resolve, reject) => {
      const onReady = (m: { ready?: boolean; error?: string }) => {
        if (m.ready === undefined) return;
        worker.off("message", onReady);
        if (m.ready) resolve();
        else reject(new VisionWorkerError(`${this.name} worker could not load its models: ${m.error}`));
      };
      worker.on("message", onReady);
      worker.once("exit", (code) =>
        reject(new VisionWorkerError(`${this.name} worker exited (code ${code}) while loading`)),
      );
    });
    worker.on("message", (m: VisionResponse | { ready: boolean }) => {
      if (!("id" in m)) return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      p.resolve(m);
    });
    worker.on("error", () => {});
    worker.once("exit", (code) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      this.ready = undefined;
      const failed = [...this.pending.values()];
      this.pending.clear();
      for (const p of failed) p.reject(new VisionWorkerError(`${this.name} worker exited (code ${code})`));
    });
    // A failed load is reported to the caller of this request; the next one tries again.
    this.ready.catch(() => {
      if (this.worker === worker) void worker.terminate();
    });
    return this.ready;
  }

  async request(job: VisionJob, transfer: ArrayBuffer[]): Promise<VisionResponse> {
    const request: VisionRequest = { ...job, id: this.nextId++ };
    this.outstanding++;
    try {
      await this.start();
      const worker = this.worker!;
      const r = await new Promise<VisionResponse>((resolve, reject) => {
        this.pending.set(request.id, { resolve, reject });
        worker.postMessage(request, transfer);
      });
      if (!r.ok) {
        const e = new Error(r.error.message);
        e.name = r.error.name;
        throw e;
      }
      return r;
    } finally {
      this.outstanding--;
    }
  }

  /** Requests made and not yet answered (counted from the call, before the worker is even up). */
  get inFlight(): number {
    return this.outstanding;
  }

  async close() {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
  }
}

/**
 * Bytes for the worker, and what to transfer: shared memory is read in place; otherwise a copy the worker can
 * own, since a view's bytes may sit in a larger buffer the bus still holds for redelivery.
 */
function forWorker(data: Uint8Array): { data: Uint8Array; transfer: ArrayBuffer[] } {
  if (data.buffer instanceof SharedArrayBuffer) return { data, transfer: [] };
  const copy = data.slice();
  return { data: copy, transfer: [copy.buffer] };
}

const leastBusy = (threads: VisionThread[]) => threads.reduce((a, b) => (b.inFlight < a.inFlight ? b : a));

/**
 * Frames go to whichever detect-align worker has the fewest waiting: one per core keeps every core busy. When
 * the workers batch detection, a batch goes whole to one worker, so that it is one detector run.
 */
export class ThreadedAnalyzer implements FrameAnalyzer {
  constructor(
    private readonly threads: VisionThread[],
    readonly detectorModelId: string,
    /** The workers' detectBatch (they decide as the main thread's analyzer did, from the same config). */
    readonly detectBatch?: number,
  ) {}

  async analyzeBatch(jobs: AnalyzeJob[]): Promise<AlignedFace[][]> {
    if (this.detectBatch === undefined || jobs.length === 0)
      return Promise.all(jobs.map((job) => this.analyze(job.image, job.options)));
    const parts = jobs.map((job) => forWorker(job.image.data));
    const r = await leastBusy(this.threads).request(
      {
        op: "analyzeBatch",
        jobs: jobs.map((job, i) => ({ ...job, image: { ...job.image, data: parts[i]!.data } })),
      },
      parts.flatMap((p) => p.transfer),
    );
    // Anything else is a protocol error; answering "no faces" would lose the frames' faces silently.
    if (!("batch" in r)) throw new Error("vision worker answered a batch with something else");
    return r.batch;
  }

  async analyze(image: FrameImage | EncodedFrame, options?: AnalyzeOptions): Promise<AlignedFace[]> {
    const thread = leastBusy(this.threads);
    const { data, transfer } = forWorker(image.data);
    const r = await thread.request({ op: "analyze", image: { ...image, data }, options }, transfer);
    return "faces" in r ? r.faces : [];
  }
}

/** A batch of crops is split across the embed workers, so a burst of new faces is embedded in parallel. */
export class ThreadedEmbedder implements Embedder {
  constructor(
    private readonly threads: VisionThread[],
    readonly modelId: string,
    readonly dim: number,
  ) {}

  async embed(crops: FrameImage[]): Promise<Float32Array[]> {
    const per = Math.ceil(crops.length / this.threads.length);
    const chunks: FrameImage[][] = [];
    for (let i = 0; i < crops.length; i += per) chunks.push(crops.slice(i, i + per));
    const results = await Promise.all(chunks.map((chunk) => this.embedOn(leastBusy(this.threads), chunk)));
    return results.flat();
  }

  private async embedOn(thread: VisionThread, crops: FrameImage[]): Promise<Float32Array[]> {
    const parts = crops.map((c) => forWorker(c.data));
    const r = await thread.request(
      { op: "embed", crops: crops.map((c, i) => ({ ...c, data: parts[i]!.data })) },
      parts.flatMap((p) => p.transfer),
    );
    return "vectors" in r ? r.vectors : [];
  }
}

/**
 * Detection and embedding in worker threads (`models.detectWorkers`, `models.embedWorkers`), with the pack the main
 * thread resolved (so a fallback is decided once). Their sessions run single-threaded: the parallelism is the
 * workers beside the main thread, and single-threaded inference is the cheapest per frame.
 */
export async function startVisionThreads(
  config: Config,
  vision: Vision,
  roles: { analyzer?: boolean; embedder?: boolean } = { analyzer: true, embedder: true },
) {
  const workerConfig: Config = {
    ...config,
    models: {
      ...config.models,
      pack: vision.pack.id as Config["models"]["pack"],
      intraOpThreads: config.models.intraOpThreads || 1,
    },
  };
  const detect = Array.from(
    { length: roles.analyzer ? config.models.detectWorkers : 0 },
    (_, i) => new VisionThread(`detect-align#${i + 1}`, workerConfig, "analyzer"),
  );
  const embed = Array.from(
    { length: roles.embedder ? config.models.embedWorkers : 0 },
    (_, i) => new VisionThread(`embed#${i + 1}`, workerConfig, "embedder"),
  );
  const all = [...detect, ...embed];
  try {
    await Promise.all(all.map((t) => t.start()));
  } catch (err) {
    await Promise.all(all.map((t) => t.close()));
    throw err;
  }
  return {
    // A role without threads keeps the in-process half (a service that only embeds never detects).
    analyzer: detect.length
      ? new ThreadedAnalyzer(detect, vision.analyzer.detectorModelId, vision.analyzer.detectBatch)
      : vision.analyzer,
    embedder: embed.length
      ? new ThreadedEmbedder(embed, vision.embedder.modelId, vision.embedder.dim)
      : vision.embedder,
    close: async () => {
      await Promise.all(all.map((t) => t.close()));
    },
  };
}
