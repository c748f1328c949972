import { readFileSync } from "node:fs";
import type { Config } from "../../config/index.ts";
import { applyGraphFixes } from "../models/graph-fixes.ts";
import type { ModelSpec } from "../models/registry.ts";
import { fillResizedTensor, type FrameImage } from "../pixels/image.ts";
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
  ) {
    this.modelId = spec.id;
    const slots = bucket ? batchBucket(maxBatch) : maxBatch;
    this.input = new Float32Array(slots * 3 * width * height);
  }

  static async open(
    modelPath: string,
    spec: ModelSpec,
    models: Config["models"],
    detect: Pick<Config["detect"], "scoreThreshold" | "nmsIou">,
    size: { width: number; height: number; maxBatch: number; maxSide?: number },
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
    return new BatchedYuNet(
      session,
      spec,
      size.width,
      size.height,
      size.maxBatch,
      detect,
      size.maxSide ?? Infinity,
      bucket,
    );
  }

  /** Writes frames into the batch tensor; returns each frame's scale back to its own pixels. */
  async fill(frames: FrameImage[]): Promise<{ scaleX: number; scaleY: number }[]> {
    if (frames.length > this.maxBatch) throw new Error(`batch of ${frames.length} > ${this.maxBatch}`);
    const plane = 3 * this.width * this.height;
    const scales: { scaleX: number; scaleY: number }[] = [];
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i]!;
      const scale = Math.min(
        1,
        this.maxSide / Math.max(f.width, f.height),
        this.width / f.width,
        this.height / f.height,
      );
      const w = Math.max(1, Math.round(f.width * scale));
      const h = Math.max(1, Math.round(f.height * scale));
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

  private async detectInTurn(frames: FrameImage[]): Promise<Detection[][]> {
    const results: Detection[][] = [];
    for (let start = 0; start < frames.length; start += this.maxBatch) {
      const chunk = frames.slice(start, start + this.maxBatch);
      const scales = await this.fill(chunk);
      const out = await this.run(chunk.length);
      scales.forEach(({ scaleX, scaleY }, i) =>
        results.push(decodeYuNet(out, i, this.width, scaleX, scaleY, this.options)),
      );
    }
    return results;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
