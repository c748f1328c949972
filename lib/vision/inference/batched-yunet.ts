import { readFileSync } from "node:fs";
import type { Config } from "../../config/index.ts";
import { nms, type Point } from "../../geometry/index.ts";
import { applyGraphFixes } from "../models/graph-fixes.ts";
import type { ModelSpec } from "../models/registry.ts";
import { fillResizedTensor, type FrameImage } from "../pixels/image.ts";
import type { Detection } from "./detectors/detection.ts";
import { createSession, ort, type SessionOptions } from "./runtime.ts";

const STRIDES = [8, 16, 32] as const;

/** YuNet's outputs for item `item` of a batch, decoded to frame coordinates (OpenCV FaceDetectorYN's rules). */
export function decodeYuNet(
  out: ort.InferenceSession.OnnxValueMapType,
  item: number,
  inputWidth: number,
  scaleX: number,
  scaleY: number,
  options: Pick<Config["detect"], "scoreThreshold" | "nmsIou">,
): Detection[] {
  const found: Detection[] = [];
  for (const s of STRIDES) {
    const cls = out[`cls_${s}`]!;
    const anchors = cls.dims[1]!;
    const base = item * anchors;
    const clsData = cls.data as Float32Array;
    const obj = out[`obj_${s}`]!.data as Float32Array;
    const bbox = out[`bbox_${s}`]!.data as Float32Array;
    const kps = out[`kps_${s}`]!.data as Float32Array;
    const cols = inputWidth / s;
    for (let i = 0; i < anchors; i++) {
      const a = base + i;
      const c = Math.min(1, Math.max(0, clsData[a]!));
      const o = Math.min(1, Math.max(0, obj[a]!));
      const score = Math.sqrt(c * o);
      if (score < options.scoreThreshold) continue;
      const col = i % cols;
      const row = Math.floor(i / cols);
      const cx = (col + bbox[a * 4]!) * s;
      const cy = (row + bbox[a * 4 + 1]!) * s;
      const bw = Math.exp(bbox[a * 4 + 2]!) * s;
      const bh = Math.exp(bbox[a * 4 + 3]!) * s;
      const landmarks: Point[] = [];
      for (let k = 0; k < 5; k++) {
        landmarks.push([
          (kps[a * 10 + 2 * k]! + col) * s * scaleX,
          (kps[a * 10 + 2 * k + 1]! + row) * s * scaleY,
        ]);
      }
      found.push({
        box: {
          x: (cx - bw / 2) * scaleX,
          y: (cy - bh / 2) * scaleY,
          width: bw * scaleX,
          height: bh * scaleY,
        },
        score,
        landmarks,
      });
    }
  }
  return nms(found, options.nmsIou);
}

/**
 * YuNet over many frames per run, every frame scaled (aspect kept, never enlarged) into one fixed input size:
 * a GPU spends about as long on one 640×384 frame as on sixteen, so batching is where its throughput is, and one
 * shape keeps a TensorRT engine or cuDNN's tuned kernels valid for every batch. The shipped graph fixes batch 1;
 * it is opened with the batch dimension made dynamic (the same load-time fix the embedder gets).
 */
export class BatchedYuNet {
  readonly modelId: string;
  private input: Float32Array;
  /** What each batch slot holds, so a slot's zero padding is rewritten only when the frame size changes. */
  private slotShape: string[] = [];

  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly spec: ModelSpec,
    readonly width: number,
    readonly height: number,
    readonly maxBatch: number,
    private readonly options: Pick<Config["detect"], "scoreThreshold" | "nmsIou">,
  ) {
    this.modelId = spec.id;
    this.input = new Float32Array(maxBatch * 3 * width * height);
  }

  static async open(
    modelPath: string,
    spec: ModelSpec,
    models: Config["models"],
    detect: Pick<Config["detect"], "scoreThreshold" | "nmsIou">,
    size: { width: number; height: number; maxBatch: number },
    sessionOptions: SessionOptions = {},
  ): Promise<BatchedYuNet> {
    if (spec.decoder !== "yunet") throw new Error(`${spec.id} is not a YuNet detector`);
    const stride = spec.input.stride ?? 32;
    if (size.width % stride || size.height % stride) {
      throw new Error(`YuNet's input must be a multiple of ${stride}: ${size.width}×${size.height} is not`);
    }
    const { model } = applyGraphFixes(readFileSync(modelPath), ["dynamic-batch"]);
    const session = await createSession(model, models, sessionOptions);
    return new BatchedYuNet(session, spec, size.width, size.height, size.maxBatch, detect);
  }

  /** Writes frames into the batch tensor; returns each frame's scale back to its own pixels. */
  async fill(frames: FrameImage[]): Promise<{ scaleX: number; scaleY: number }[]> {
    if (frames.length > this.maxBatch) throw new Error(`batch of ${frames.length} > ${this.maxBatch}`);
    const plane = 3 * this.width * this.height;
    const scales: { scaleX: number; scaleY: number }[] = [];
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i]!;
      const scale = Math.min(1, this.width / f.width, this.height / f.height);
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

  /** Runs the first `n` slots of the batch tensor as filled last. */
  run(n: number): Promise<ort.InferenceSession.OnnxValueMapType> {
    const data = this.input.subarray(0, n * 3 * this.width * this.height);
    return this.session.run({ input: new ort.Tensor("float32", data, [n, 3, this.height, this.width]) });
  }

  async detectBatch(frames: FrameImage[]): Promise<Detection[][]> {
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
