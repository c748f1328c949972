import type { Config } from "../../../config/index.ts";
import { fillResizedTensor, fillTensor, toBgr, type BgrImage, type FrameImage } from "../../pixels/image.ts";
import type { ModelSpec } from "../../models/registry.ts";
import { ort } from "../runtime.ts";
import { type Detection, type FaceDetector } from "./detection.ts";
import sharp from "sharp";
import { nms, type Box, type Point } from "../../../geometry/index.ts";

/** iBUG 68-point indices → the five alignment points (eye centres, nose tip, mouth corners). */
export function fivePointsFrom68(p: Point[]): Point[] {
  const mean = (from: number, to: number): Point => {
    let x = 0,
      y = 0;
    for (let i = from; i <= to; i++) {
      x += p[i]![0];
      y += p[i]![1];
    }
    return [x / (to - from + 1), y / (to - from + 1)];
  };
  return [mean(36, 41), mean(42, 47), p[30]!, p[48]!, p[54]!];
}

/**
 * The npm-only fallback detector: UltraFace-RFB boxes (decoded inside the graph, normalised corners) refined by
 * a 68-landmark model on a square grey crop, reduced to the five alignment points.
 */
export class UltraFaceDetector implements FaceDetector {
  readonly modelId: string;
  constructor(
    private readonly session: ort.InferenceSession,
    private readonly spec: ModelSpec,
    private readonly landmarkSession: ort.InferenceSession,
    private readonly landmarkSpec: ModelSpec,
    private readonly options: Config["detect"],
  ) {
    this.modelId = `${spec.id}+${landmarkSpec.id}`;
  }

  async detect(frame: FrameImage): Promise<Detection[]> {
    const w = this.spec.input.width!;
    const h = this.spec.input.height!;
    const input = new Float32Array(3 * w * h);
    await fillResizedTensor(frame, w, h, this.spec.input, input, 0);
    const out = await this.session.run({ input: new ort.Tensor("float32", input, [1, 3, h, w]) });
    const scores = out.scores!.data as Float32Array;
    const boxes = out.boxes!.data as Float32Array;
    const found: { box: Box; score: number }[] = [];
    for (let i = 0; i < scores.length / 2; i++) {
      const score = scores[i * 2 + 1]!;
      if (score < this.options.scoreThreshold) continue;
      const x1 = boxes[i * 4]! * frame.width;
      const y1 = boxes[i * 4 + 1]! * frame.height;
      const x2 = boxes[i * 4 + 2]! * frame.width;
      const y2 = boxes[i * 4 + 3]! * frame.height;
      found.push({ box: { x: x1, y: y1, width: x2 - x1, height: y2 - y1 }, score });
    }
    const kept = nms(found, this.options.nmsIou);
    if (kept.length === 0) return [];
    // The landmark model's patches are cut with sharp, which takes packed pixels.
    const image = toBgr(frame);
    const detections: Detection[] = [];
    for (const k of kept) {
      const landmarks = await this.landmarks(image, k.box);
      if (landmarks) detections.push({ ...k, landmarks });
    }
    return detections;
  }

  private async landmarks(image: BgrImage, box: Box): Promise<Point[] | undefined> {
    const size = Math.round(Math.max(box.width, box.height));
    const left = Math.round(box.x + box.width / 2 - size / 2);
    const top = Math.round(box.y + box.height / 2 - size / 2);
    // Clamp the square crop into the frame; a face at the edge keeps a smaller, still square, window.
    const l = Math.max(0, left),
      t = Math.max(0, top);
    const side = Math.min(size, image.width - l, image.height - t);
    if (side < 8) return undefined;
    const lw = this.landmarkSpec.input.width!;
    const lh = this.landmarkSpec.input.height!;
    const patch = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
      .extract({ left: l, top: t, width: side, height: side })
      .resize(lw, lh, { fit: "fill" })
      .raw()
      .toBuffer();
    const input = new Float32Array(lw * lh);
    fillTensor({ width: lw, height: lh, data: new Uint8Array(patch) }, this.landmarkSpec.input, input, 0);
    const out = await this.landmarkSession.run({ input: new ort.Tensor("float32", input, [1, 1, lh, lw]) });
    const raw = out[this.landmarkSession.outputNames[0]!]!.data as Float32Array;
    const points: Point[] = [];
    for (let i = 0; i < 68; i++) points.push([l + raw[i * 2]! * side, t + raw[i * 2 + 1]! * side]);
    return fivePointsFrom68(points);
  }
}
