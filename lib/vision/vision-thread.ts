import type { Worker } from "node:worker_threads";
import type { Config } from "../config/index.ts";
import { startTsWorker } from "../util/ts-worker.ts";
import type { Embedder } from "./embedder.ts";
import type { AlignedFace, FrameAnalyzer } from "./face-analyzer.ts";
import type { BgrImage, FrameImage } from "./image.ts";
import type { Vision } from "./vision.ts";

export interface VisionWorkerData {
  config: Config;
}

export type VisionRequest =
  { id: number; op: "analyze"; image: FrameImage } | { id: number; op: "embed"; crops: BgrImage[] };

export type VisionResponse =
  | { id: number; ok: true; faces: AlignedFace[] }
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
  private closed = false;

  constructor(
    private readonly name: string,
    private readonly config: Config,
  ) {}

  /** Starts the worker now, so model loading happens before the first frame rather than during it. */
  start(): Promise<void> {
    if (this.closed) return Promise.reject(new VisionWorkerError(`${this.name} worker is closed`));
    if (this.ready) return this.ready;
    const worker = startTsWorker(new URL("./vision-worker.ts", import.meta.url), {
      config: this.config,
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

  async request(request: VisionRequest, transfer: ArrayBuffer[]): Promise<VisionResponse> {
    await this.start();
    const worker = this.worker!;
    return new Promise<VisionResponse>((resolve, reject) => {
      this.pending.set(request.id, { resolve, reject });
      worker.postMessage(request, transfer);
    }).then((r) => {
      if (!r.ok) {
        const e = new Error(r.error.message);
        e.name = r.error.name;
        throw e;
      }
      return r;
    });
  }

  id(): number {
    return this.nextId++;
  }

  async close() {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
  }
}

/** A copy the worker can own: a view's bytes may sit in a larger buffer the bus still holds. */
function ownedCopy(data: Uint8Array): Uint8Array {
  return data.slice();
}

export class ThreadedAnalyzer implements FrameAnalyzer {
  constructor(
    private readonly thread: VisionThread,
    readonly detectorModelId: string,
  ) {}

  async analyze(image: FrameImage): Promise<AlignedFace[]> {
    const data = ownedCopy(image.data);
    const r = await this.thread.request({ id: this.thread.id(), op: "analyze", image: { ...image, data } }, [
      data.buffer as ArrayBuffer,
    ]);
    return "faces" in r ? r.faces : [];
  }
}

export class ThreadedEmbedder implements Embedder {
  constructor(
    private readonly thread: VisionThread,
    readonly modelId: string,
    readonly dim: number,
  ) {}

  async embed(crops: BgrImage[]): Promise<Float32Array[]> {
    const owned = crops.map((c) => ({ ...c, data: ownedCopy(c.data) }));
    const r = await this.thread.request(
      { id: this.thread.id(), op: "embed", crops: owned },
      owned.map((c) => c.data.buffer as ArrayBuffer),
    );
    return "vectors" in r ? r.vectors : [];
  }
}

/**
 * Detection and embedding each in their own worker, with the pack the main thread resolved (so a fallback is
 * decided once). Their sessions run single-threaded: the parallelism is the two workers beside the main thread.
 */
export async function startVisionThreads(config: Config, vision: Vision) {
  const workerConfig: Config = {
    ...config,
    models: {
      ...config.models,
      pack: vision.pack.id as Config["models"]["pack"],
      intraOpThreads: config.models.intraOpThreads || 1,
    },
  };
  const detect = new VisionThread("detect-align", workerConfig);
  const embed = new VisionThread("embed", workerConfig);
  await Promise.all([detect.start(), embed.start()]);
  return {
    analyzer: new ThreadedAnalyzer(detect, vision.analyzer.detectorModelId),
    embedder: new ThreadedEmbedder(embed, vision.embedder.modelId, vision.embedder.dim),
    close: async () => {
      await Promise.all([detect.close(), embed.close()]);
    },
  };
}
