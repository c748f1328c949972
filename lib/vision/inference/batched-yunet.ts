import { readFileSync } from "node:fs";
import type { Config } from "../../config/index.ts";
import { applyGraphFixes } from "../models/graph-fixes.ts";
import type { ModelSpec } from "../models/registry.ts";
import { fillResizedTensor, type FrameImage } from "../pixels/image.ts";
import { isYuv420, type Yuv420Image } from "../pixels/yuv.ts";
import { wholeFactor, withYuv420Input, type FrameGeometry } from "../models/frame-input.ts";
import { FrameInputSessions } from "./frame-sessions.ts";
import type { Detection } from "./detectors/detection.ts";
import { decodeYuNet } from "./detectors/yunet.ts";
import { batchBucket, createSession, effectiveProvider, ort, type SessionOptions } from "./runtime.ts";

/**
 * YuNet over many frames per run, every frame scaled (aspect kept, never enlarged) into one fixed input size:
 * a GPU spends about as long on one 640×384 frame as on sixteen, so batching is where its throughput is, and one
 * shape keeps a TensorRT engine or cuDNN's tuned kernels valid for every batch. The shipped graph fixes batch 1;
 * it is opened with the batch dimension made dynamic (the same load-time fix the embedder gets).
 *
 * Detect-align uses it for every frame its camera leaves at the default size (see FaceAnalyzer.analyzeBatch);
 * `vigil bench gpu` measures it on its own.
 */
export class BatchedYuNet {
  readonly modelId: string;
  private input: Float32Array;
  /** What each batch slot holds, so a slot's zero padding is rewritten only when the frame size changes. */
  private slotShape: string[] = [];
  /** The frame-input graphs opened so far (when frames may go in as yuv420p bytes). */
  private readonly frameSessions?: FrameInputSessions;
  /** detectBatch calls one after another: they share the input tensor. */
  private turn: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly spec: ModelSpec,
    readonly width: number,
    readonly height: number,
    readonly maxBatch: number,
    private readonly options: Pick<Config["detect"], "scoreThreshold" | "nmsIou">,
    /** The longer side a frame is scaled to at most (as the one-frame detector's maxSide), besides fitting. */
    private readonly maxSide: number,
    /**
     * Runs are padded to the runtime's batch buckets here, in the tensor's own spare slots, rather than by the
     * bucketing session, which would copy the whole batch into a fresh tensor on every run.
     */
    private readonly bucket: boolean,
    /** The model with a yuv420p frame input for one frame geometry (lib/vision/models/frame-input.ts), if wanted. */
    openFrameInput?: (geometry: FrameGeometry) => Promise<ort.InferenceSession>,
  ) {
    if (openFrameInput) this.frameSessions = new FrameInputSessions(openFrameInput);
    this.modelId = spec.id;
    const slots = bucket ? batchBucket(maxBatch) : maxBatch;
    this.input = new Float32Array(slots * 3 * width * height);
  }

  static async open(
    modelPath: string,
    spec: ModelSpec,
    models: Config["models"],
    detect: Pick<Config["detect"], "scoreThreshold" | "nmsIou">,
    size: { width: number; height: number; maxBatch: number; maxSide?: number; frameInput?: boolean },
    sessionOptions: SessionOptions = {},
  ): Promise<BatchedYuNet> {
    if (spec.decoder !== "yunet") throw new Error(`${spec.id} is not a YuNet detector`);
    const stride = spec.input.stride ?? 32;
    if (size.width % stride || size.height % stride) {
      throw new Error(`YuNet's input must be a multiple of ${stride}: ${size.width}×${size.height} is not`);
    }
    const { model } = applyGraphFixes(readFileSync(modelPath), ["dynamic-batch"]);
    const session = await createSession(model, models, sessionOptions);
    // After the session: `auto` has settled on a provider by now. GPU sessions pad to buckets (runtime.ts).
    const bucket = sessionOptions.bucket ?? effectiveProvider(models) !== "cpu";
    const frameSessionOptions = {
      ...sessionOptions,
      // Padded here, in the batch's own spare slots, as the float input is.
      bucket: false,
      detectorGrid: { width: size.width, height: size.height },
    };
    return new BatchedYuNet(
      session,
      spec,
      size.width,
      size.height,
      size.maxBatch,
      detect,
      size.maxSide ?? Infinity,
      bucket,
      size.frameInput
        ? (geometry) =>
            createSession(
              withYuv420Input(model, spec.input, geometry, "dynamic"),
              models,
              frameSessionOptions,
            )
        : undefined,
    );
  }

  /** The size a frame is scaled to inside the input (aspect kept, never enlarged). */
  private fit(f: { width: number; height: number }): { w: number; h: number } {
    const scale = Math.min(
      1,
      this.maxSide / Math.max(f.width, f.height),
      this.width / f.width,
      this.height / f.height,
    );
    return { w: Math.max(1, Math.round(f.width * scale)), h: Math.max(1, Math.round(f.height * scale)) };
  }

  /** The frame-input geometry a frame can go through, when it is a live frame scaled by a whole factor. */
  private frameGeometry(f: FrameImage): FrameGeometry | undefined {
    if (!this.frameSessions || !isYuv420(f)) return undefined;
    const { w, h } = this.fit(f);
    const k = wholeFactor(f.width, f.height, w, h);
    return k === undefined
      ? undefined
      : { width: f.width, height: f.height, k, padWidth: this.width, padHeight: this.height };
  }

  /** Writes frames into the batch tensor; returns each frame's scale back to its own pixels. */
  async fill(frames: FrameImage[]): Promise<{ scaleX: number; scaleY: number }[]> {
    if (frames.length > this.maxBatch) throw new Error(`batch of ${frames.length} > ${this.maxBatch}`);
    const plane = 3 * this.width * this.height;
    const scales: { scaleX: number; scaleY: number }[] = [];
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i]!;
      const { w, h } = this.fit(f);
      const shape = `${w}x${h}`;
      if (this.slotShape[i] !== shape) {
        this.input.fill(0, i * plane, (i + 1) * plane);
        this.slotShape[i] = shape;
      }
      await fillResizedTensor(f, w, h, this.spec.input, this.input, i * plane, this.width, this.height);
      scales.push({ scaleX: f.width / w, scaleY: f.height / h });
    }
    return scales;
  }

  /**
   * Runs the first `n` slots of the batch tensor as filled last (padded to the bucket size when bucketing: the
   * extra slots hold whatever they held, and their outputs are never read).
   */
  run(n: number): Promise<ort.InferenceSession.OnnxValueMapType> {
    const slots = this.bucket ? batchBucket(n) : n;
    const data = this.input.subarray(0, slots * 3 * this.width * this.height);
    return this.session.run({ input: new ort.Tensor("float32", data, [slots, 3, this.height, this.width]) });
  }

  /** Each frame's faces in its own pixels, in order; runs of maxBatch frames at most. */
  detectBatch(frames: FrameImage[]): Promise<Detection[][]> {
    const result = this.turn.then(() => this.detectInTurn(frames));
    this.turn = result.catch(() => {});
    return result;
  }

  /**
   * Live frames of one geometry go through the frame-input graph together (their bytes side by side, the pixel
   * work in the graph); any other frame is filled into the float tensor here. Results keep the frames' order.
   */
  private async detectInTurn(frames: FrameImage[]): Promise<Detection[][]> {
    const results: Detection[][] = new Array(frames.length);
    const byGeometry = new Map<string, { geometry: FrameGeometry; at: number[] }>();
    const rest: number[] = [];
    frames.forEach((f, i) => {
      const geometry = this.frameGeometry(f);
      if (!geometry) return rest.push(i);
      const key = `${geometry.width}x${geometry.height}/${geometry.k}`;
      const group = byGeometry.get(key) ?? { geometry, at: [] };
      group.at.push(i);
      byGeometry.set(key, group);
    });
    for (const { geometry, at } of byGeometry.values()) {
      for (let start = 0; start < at.length; start += this.maxBatch) {
        const chunk = at.slice(start, start + this.maxBatch);
        const out = await this.runFrames(
          geometry,
          chunk.map((i) => frames[i] as Yuv420Image),
        );
        const scale = geometry.k;
        chunk.forEach((frameAt, j) => {
          results[frameAt] = decodeYuNet(out, j, this.width, scale, scale, this.options);
        });
      }
    }
    for (let start = 0; start < rest.length; start += this.maxBatch) {
      const chunk = rest.slice(start, start + this.maxBatch);
      const scales = await this.fill(chunk.map((i) => frames[i]!));
      const out = await this.run(chunk.length);
      scales.forEach(({ scaleX, scaleY }, j) => {
        results[chunk[j]!] = decodeYuNet(out, j, this.width, scaleX, scaleY, this.options);
      });
    }
    return results;
  }

  /** The batch's bytes, reused (one geometry's frames side by side). */
  private frameBatch = new Uint8Array(0);

  private async runFrames(geometry: FrameGeometry, frames: Yuv420Image[]) {
    const session = this.frameSessions!.get(geometry);
    const bytes = frames[0]!.data.byteLength;
    const slots = this.bucket ? batchBucket(frames.length) : frames.length;
    if (this.frameBatch.byteLength < slots * bytes) this.frameBatch = new Uint8Array(slots * bytes);
    // One copy per frame, from its shared slot into the run's contiguous batch (ONNX Runtime takes no shared
    // memory, and a batch is one tensor); spare bucket slots hold whatever they held and are never read.
    frames.forEach((f, i) => this.frameBatch.set(f.data, i * bytes));
    const data = this.frameBatch.subarray(0, slots * bytes);
    return (await session).run({ frames: new ort.Tensor("uint8", data, [slots, bytes]) });
  }

  async release(): Promise<void> {
    await this.session.release();
    await this.frameSessions?.release();
  }
}
