import { DynamicBatcher, type BatcherOptions } from "../../lib/batching/dynamic-batcher.ts";
import { FaceContract, FrameContract, Topics, type FrameMessage } from "../../lib/contracts/index.ts";
import { deadLetter, type Emit, type Stage } from "../../lib/runtime/stage.ts";
import type { AlignedFace, FaceAnalyzer } from "../../lib/vision/face-analyzer.ts";
import { decodeImage, type BgrImage } from "../../lib/vision/image.ts";

export interface DetectAlignStats {
  frames: number;
  faces: number;
  rejected: number;
  /** Rejections by the first word of their reason ("blurred", "too small", …). */
  rejectedBy: Record<string, number>;
  corruptFrames: number;
}

/** frames → aligned faces that pass the quality gate; detection is batched across every camera's frames. */
export class DetectAlignStage implements Stage<FrameMessage> {
  readonly name = "detect-align";
  readonly input = { topic: Topics.frames, contract: FrameContract };
  readonly stats: DetectAlignStats = { frames: 0, faces: 0, rejected: 0, rejectedBy: {}, corruptFrames: 0 };
  private readonly batcher: DynamicBatcher<BgrImage, AlignedFace[]>;

  constructor(
    private readonly analyzer: FaceAnalyzer,
    batching: BatcherOptions,
  ) {
    this.batcher = new DynamicBatcher(batching, async (images) => {
      const out: AlignedFace[][] = [];
      for (const image of images) out.push(await this.analyzer.analyze(image));
      return out;
    });
  }

  async handle(frames: FrameMessage[]): Promise<Emit[]> {
    const emits: Emit[] = [];
    const jobs = frames.map(async (frame) => {
      let image: BgrImage;
      try {
        image = await frameImage(frame);
      } catch (err) {
        this.stats.corruptFrames++;
        const record = { key: frame.cameraId, value: FrameContract.encode(frame) };
        emits.push(
          deadLetter(
            Topics.frames,
            record,
            `corrupt frame ${frame.cameraId}#${frame.seq}: ${(err as Error).message}`,
          ),
        );
        return;
      }
      this.stats.frames++;
      const faces = await this.batcher.submit(image);
      faces.forEach((face, index) => {
        if (face.quality.reasons.length > 0) {
          this.stats.rejected++;
          for (const reason of face.quality.reasons) {
            const key = reason.split(":")[0]!;
            this.stats.rejectedBy[key] = (this.stats.rejectedBy[key] ?? 0) + 1;
          }
          return;
        }
        this.stats.faces++;
        emits.push({
          topic: Topics.faces,
          key: frame.cameraId,
          value: FaceContract.encode({
            faceId: `${frame.cameraId}:${frame.seq}:${index}`,
            cameraId: frame.cameraId,
            frameSeq: frame.seq,
            captureTs: frame.captureTs,
            frameWidth: frame.width,
            frameHeight: frame.height,
            box: face.detection.box,
            landmarks: face.detection.landmarks,
            quality: face.quality.scores,
            detectorModel: this.analyzer.detector.modelId,
            cropSize: { width: face.crop.width, height: face.crop.height },
            crop: face.crop.data,
          }),
        });
      });
    });
    await Promise.all(jobs);
    return emits;
  }
}

async function frameImage(frame: FrameMessage): Promise<BgrImage> {
  if (frame.format === "jpeg") {
    const image = await decodeImage(frame.image, `frame ${frame.cameraId}#${frame.seq}`);
    if (image.width !== frame.width || image.height !== frame.height) {
      throw new Error(`JPEG is ${image.width}×${image.height}, header says ${frame.width}×${frame.height}`);
    }
    return image;
  }
  if (frame.image.byteLength !== frame.width * frame.height * 3) {
    throw new Error(`${frame.image.byteLength} bytes of bgr24 for ${frame.width}×${frame.height}`);
  }
  return { width: frame.width, height: frame.height, data: frame.image };
}
