import type { Config } from "../../../config/index.ts";
import { fillResizedTensor, type FrameImage } from "../../pixels/image.ts";
import { isYuv420, type Yuv420Image } from "../../pixels/yuv.ts";
import { wholeFactor, type FrameGeometry } from "../../models/frame-input.ts";
import { FrameInputSessions } from "../frame-sessions.ts";
import type { ModelSpec } from "../../models/registry.ts";
import { ort } from "../runtime.ts";
import { type DetectOptions, type Detection, type FaceDetector } from "./detection.ts";
import { nms, type Point } from "../../../geometry/index.ts";

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
 * YuNet (OpenCV zoo): anchor-free, one prediction per grid cell at strides 8/16/32, with class and objectness
 * scores, box offsets (centre in cells, log size) and five keypoints. Decoding follows OpenCV's FaceDetectorYN.
 */
export class YuNetDetector implements FaceDetector {
  readonly modelId: string;
  /**
   * Input tensors of recent frame sizes, reused: a 720p frame's is 3 MB, and allocating one per frame at
   * 40 frames a second keeps V8's collector busy on external-memory pressure. One per call in flight.
   */
  private spares = new Map<string, Float32Array[]>();
  /** The frame-input graphs opened so far (when the detector has a frame input). */
  private readonly frameSessions?: FrameInputSessions;
  constructor(
    private readonly session: ort.InferenceSession,
    private readonly spec: ModelSpec,
    private readonly options: Config["detect"],
    /**
     * Opens the model with a yuv420p frame input for a whole downscale factor. Given, live frames go to the
     * model as the decoder made them, and the pixel work runs in ONNX Runtime; without, or for a frame whose
     * size is no whole multiple of the detector's, the float tensor is filled here.
     */
    private readonly openFrameInput?: (geometry: FrameGeometry) => Promise<ort.InferenceSession>,
  ) {
    this.modelId = spec.id;
    if (openFrameInput) this.frameSessions = new FrameInputSessions(openFrameInput);
  }

  async detect(image: FrameImage, options: DetectOptions = {}): Promise<Detection[]> {
    const maxSide = options.maxSide ?? this.options.maxSide;
    const scale = Math.min(1, maxSide / Math.max(image.width, image.height));
    const w = Math.max(1, Math.round(image.width * scale));
    const h = Math.max(1, Math.round(image.height * scale));
    const stride = this.spec.input.stride ?? 32;
    const padW = Math.ceil(w / stride) * stride;
    const padH = Math.ceil(h / stride) * stride;
    // Reused tensors are keyed by where the image sits in them: the zero padding must be where it was.
    const k =
      isYuv420(image) && this.frameSessions ? wholeFactor(image.width, image.height, w, h) : undefined;
    if (k !== undefined) {
      const geometry = { width: image.width, height: image.height, k, padWidth: padW, padHeight: padH };
      const out = await this.runFrame(image as Yuv420Image, geometry);
      return decodeYuNet(out, 0, padW, image.width / w, image.height / h, this.options);
    }
    const shape = `${w}x${h} in ${padW}x${padH}`;
    const input = this.takeInput(shape, 3 * padW * padH);
    let out: ort.InferenceSession.OnnxValueMapType;
    try {
      // Only the w×h corner is written; the padding stays zero because a reused buffer always had this size.
      await fillResizedTensor(image, w, h, this.spec.input, input, 0, padW, padH);
      out = await this.session.run({ input: new ort.Tensor("float32", input, [1, 3, padH, padW]) });
    } finally {
      const spares = this.spares.get(shape);
      if (spares && spares.length < 4) spares.push(input);
    }
    return decodeYuNet(out, 0, padW, image.width / w, image.height / h, this.options);
  }

  private async runFrame(image: Yuv420Image, geometry: FrameGeometry) {
    const session = this.frameSessions!.get(geometry);
    // onnxruntime-node refuses shared memory as a tensor's data: a frame in a shared slot is copied once into
    // a staging buffer of its own for this run (kept for the next; one per run in flight).
    const shared = image.data.buffer instanceof SharedArrayBuffer;
    const data = shared ? this.takeStaging(image.data.byteLength) : image.data;
    try {
      if (shared) data.set(image.data);
      return await (await session).run({ frames: new ort.Tensor("uint8", data, [1, data.byteLength]) });
    } finally {
      if (shared && this.staging.length < 4) this.staging.push(data);
    }
  }

  private staging: Uint8Array[] = [];

  private takeStaging(bytes: number): Uint8Array {
    const i = this.staging.findIndex((b) => b.byteLength === bytes);
    return i >= 0 ? this.staging.splice(i, 1)[0]! : new Uint8Array(bytes);
  }

  /**
   * Kept per shape, a few shapes at most: a camera's frames and its small-face regions (one size) alternate;
   * another shape's tensor cannot be reused, since its zero padding is in the wrong place.
   */
  private takeInput(shape: string, length: number): Float32Array {
    let spares = this.spares.get(shape);
    if (!spares) {
      if (this.spares.size >= 4) this.spares.delete(this.spares.keys().next().value!);
      this.spares.set(shape, (spares = []));
    }
    return spares.pop() ?? new Float32Array(length);
  }
}
