import { DynamicBatcher, type BatcherOptions } from "../../lib/batching/dynamic-batcher.ts";
import { FaceContract, FrameContract, Topics, type FrameMessage } from "../../lib/contracts/index.ts";
import { deadLetter, type Emit, type Stage } from "../../lib/runtime/stage.ts";
import type {
  AlignedFace,
  AnalyzeJob,
  FrameAnalyzer,
  AnalyzeOptions,
} from "../../lib/vision/inference/face-analyzer.ts";
import { cropFormatOf, type EncodedFrame, type FrameImage } from "../../lib/vision/pixels/image.ts";
import { yuv420Bytes } from "../../lib/vision/pixels/yuv.ts";
import { EmbedGate, type EmbedGateOptions } from "./embed-gate.ts";

export interface DetectAlignStats {
  frames: number;
  /** Faces that passed live video's quality gate (see quality.ts: only what can never be recognised is dropped). */
  faces: number;
  /** Of those, weak looks: below the photo gate, passed on for the match stage's trust rule to weigh. */
  weak: number;
  /** Of those, the ones sent on to be embedded (the rest continue a face embedded moments ago). */
  embedded: number;
  rejected: number;
  /** Rejections by the first word of their reason ("blurred", "too small", …). */
  rejectedBy: Record<string, number>;
  corruptFrames: number;
}

/**
 * frames → aligned faces that pass live video's quality gate; detection is batched across every camera's
 * frames. The gate here drops only what can never be recognised: a small, blurred face is still a look, and
 * the match stage decides how far to trust it (services/match/template.ts).
 */
export class DetectAlignStage implements Stage<FrameMessage> {
  readonly name = "detect-align";
  readonly input = { topic: Topics.frames, contract: FrameContract };
  readonly stats: DetectAlignStats = {
    frames: 0,
    faces: 0,
    weak: 0,
    embedded: 0,
    rejected: 0,
    rejectedBy: {},
    corruptFrames: 0,
  };
  private readonly batcher: DynamicBatcher<AnalyzeJob, AlignedFace[] | Error>;
  private readonly gate: EmbedGate;
  /** Told of every frame detection has run on (metrics, benchmarks). */
  onFrameProcessed?: (frame: { cameraId: string; captureTs: number }) => void;

  constructor(
    private readonly analyzer: FrameAnalyzer,
    batching: BatcherOptions,
    gate: EmbedGateOptions,
    /** How each camera's frames are detected (input size, small faces); a camera not here: the analyzer's own. */
    private readonly detectFor: (cameraId: string) => AnalyzeOptions | undefined = () => undefined,
  ) {
    this.gate = new EmbedGate(gate);
    // All of a batch's frames are handed over at once: a worker-thread analyzer never waits on a round trip,
    // and a batching detector (models.gpu.batchedDetect) runs them in one go.
    this.batcher = new DynamicBatcher(batching, async (jobs) => {
      try {
        return await this.analyzer.analyzeBatch(jobs);
      } catch (err) {
        // A batch holds frames of other cameras and other bus batches: one frame that cannot be analysed (an
        // undecodable JPEG) must fail only its own, so each is tried alone and keeps its own outcome.
        if (jobs.length === 1) return [err as Error];
        return Promise.all(
          jobs.map((job) =>
            this.analyzer.analyzeBatch([job]).then(
              (r) => r[0]!,
              (e: unknown) => e as Error,
            ),
          ),
        );
      }
    });
  }

  async handle(frames: FrameMessage[]): Promise<Emit[]> {
    const emits: Emit[] = [];
    const jobs = frames.map(async (frame) => {
      let image: FrameImage | EncodedFrame;
      try {
        image = frameImage(frame);
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
      const faces = await this.batcher.submit({ image, options: this.detectFor(frame.cameraId) });
      if (faces instanceof Error) throw faces;
      this.onFrameProcessed?.(frame);
      const passed: { face: AlignedFace; index: number }[] = [];
      faces.forEach((face, index) => {
        if (face.quality.liveReasons.length === 0) {
          passed.push({ face, index });
          if (face.quality.reasons.length > 0) this.stats.weak++;
          return;
        }
        this.stats.rejected++;
        for (const reason of face.quality.liveReasons) {
          const key = reason.split(":")[0]!;
          this.stats.rejectedBy[key] = (this.stats.rejectedBy[key] ?? 0) + 1;
        }
      });
      this.stats.faces += passed.length;
      const decisions = this.gate.decide(
        frame.cameraId,
        { seq: frame.seq, ts: frame.captureTs },
        passed.map(({ face }) => ({ box: face.detection.box, quality: face.quality.scores })),
      );
      passed.forEach(({ face, index }, i) => {
        if (decisions[i] === "same") return;
        this.stats.embedded++;
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
            detectorModel: this.analyzer.detectorModelId,
            cropSize: { width: face.crop.width, height: face.crop.height },
            ...cropFormatOf(face.crop),
            crop: face.crop.data,
          }),
        });
      });
    });
    await Promise.all(jobs);
    return emits;
  }
}

/**
 * The frame as the analyzer takes it. A JPEG is handed on still compressed: the analyzer decodes it (in a vision
 * worker), so this thread only routes; one that cannot be decoded fails its batch and is dead-lettered alone.
 */
function frameImage(frame: FrameMessage): FrameImage | EncodedFrame {
  if (frame.format === "jpeg") {
    const { width, height, image: data } = frame;
    return { format: "jpeg", width, height, data, label: `${frame.cameraId}#${frame.seq}` };
  }
  if (frame.format === "yuv420p") {
    if (frame.width % 2 !== 0 || frame.height % 2 !== 0) {
      throw new Error(`yuv420p needs even sides, header says ${frame.width}×${frame.height}`);
    }
    const expected = yuv420Bytes(frame.width, frame.height);
    if (frame.image.byteLength !== expected) {
      throw new Error(
        `${frame.image.byteLength} bytes of yuv420p for ${frame.width}×${frame.height}, not ${expected}`,
      );
    }
    return { format: "yuv420p", width: frame.width, height: frame.height, data: frame.image };
  }
  if (frame.image.byteLength !== frame.width * frame.height * 3) {
    throw new Error(`${frame.image.byteLength} bytes of bgr24 for ${frame.width}×${frame.height}`);
  }
  return { width: frame.width, height: frame.height, data: frame.image };
}
