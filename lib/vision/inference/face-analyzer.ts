import { alignFace } from "../pixels/align.ts";
import type { Detection, FaceDetector } from "./detectors/detection.ts";
import { detectSmallFaces, type SmallFaceOptions } from "./detectors/small-faces.ts";
import { decodeFrame, isEncoded, type EncodedFrame, type FrameImage } from "../pixels/image.ts";
import { assessQuality, type QualityGateConfig, type QualityVerdict } from "../pixels/quality.ts";
import { type Point } from "../../geometry/index.ts";

export interface AlignedFace {
  detection: Detection;
  /** yuv420p from a live frame (raw, or a JPEG frame from Kafka), BGR from a photo. */
  crop: FrameImage;
  quality: QualityVerdict;
}

export interface AlignmentTarget {
  width: number;
  height: number;
  template: Point[];
}

/** How one camera's frames are detected (config `cameras[].detectMaxSide`, `…smallFaces`); unset: defaults. */
export interface AnalyzeOptions {
  /** The longer side the frame is resized to for detection. */
  maxSide: number;
  /** Extra full-resolution looks for small faces, and the overlap at which their finds are one face. */
  smallFaces?: SmallFaceOptions & { nmsIou: number };
}

/** One frame of a batch, with its camera's detection options. A compressed frame is decoded first. */
export interface AnalyzeJob {
  image: FrameImage | EncodedFrame;
  options?: AnalyzeOptions;
}

/**
 * Many frames through one detector run (BatchedYuNet): `maxSide` is the size it honours (`detect.maxSide`),
 * besides fitting its fixed input.
 */
export interface BatchFaceDetector {
  readonly modelId: string;
  readonly maxBatch: number;
  detectBatch(frames: FrameImage[]): Promise<Detection[][]>;
}

/** What the detect-align stage needs: frames in, aligned and quality-scored faces out. */
export interface FrameAnalyzer {
  readonly detectorModelId: string;
  /** Frames per detector run when detection is batched (`models.gpu.batchedDetect`); unset: one frame a run. */
  readonly detectBatch?: number;
  analyze(image: FrameImage | EncodedFrame, options?: AnalyzeOptions): Promise<AlignedFace[]>;
  /** A batch of frames (many cameras'), each frame's faces in order. */
  analyzeBatch(jobs: AnalyzeJob[]): Promise<AlignedFace[][]>;
}

/** Detect → align to the embedder's template → quality: the path live video and enrolment photos share. */
export class FaceAnalyzer implements FrameAnalyzer {
  constructor(
    readonly detector: FaceDetector,
    private readonly target: AlignmentTarget,
    private readonly gate: QualityGateConfig,
    /** Set when detection is batched: the batch detector, and the default `maxSide` it stands in for. */
    private readonly batched?: { detector: BatchFaceDetector; maxSide: number },
  ) {}

  get detectorModelId(): string {
    return this.detector.modelId;
  }

  get detectBatch(): number | undefined {
    return this.batched?.detector.maxBatch;
  }

  /**
   * Frames the batch detector can take go through it together; the rest one at a time. Either way each face
   * then takes the one path below (alignDetection).
   */
  async analyzeBatch(encoded: AnalyzeJob[]): Promise<AlignedFace[][]> {
    // A frame that cannot be decoded fails the batch: the runner then tries its frames one by one and
    // dead-letters that one alone.
    const jobs = await Promise.all(
      encoded.map(async (job) =>
        isEncoded(job.image) ? { ...job, image: await decodeFrame(job.image) } : job,
      ),
    );
    const results: (AlignedFace[] | undefined)[] = new Array(jobs.length);
    const together = jobs.flatMap((job, i) => (this.batchable(job) ? [{ job, i }] : []));
    if (together.length > 0) {
      const found = await this.batched!.detector.detectBatch(
        together.map(({ job }) => job.image as FrameImage),
      );
      together.forEach(({ job, i }, k) => {
        results[i] = found[k]!.map((d) => this.alignDetection(job.image as FrameImage, d));
      });
    }
    await Promise.all(
      jobs.map(async (job, i) => {
        results[i] ??= await this.analyze(job.image, job.options);
      }),
    );
    return results as AlignedFace[][];
  }

  /**
   * The batch detector letterboxes every frame into its one input size at `detect.maxSide`. A frame whose
   * camera asks for another size (`cameras[].detectMaxSide`) or for a small-face pass (`cameras[].smallFaces`,
   * `detect.smallFaces`) goes through the one-frame path, which honours both.
   */
  private batchable(job: AnalyzeJob): boolean {
    if (!this.batched) return false;
    const o = job.options;
    return !o || (o.maxSide === this.batched.maxSide && (o.smallFaces?.mode ?? "off") === "off");
  }

  async analyze(input: FrameImage | EncodedFrame, options?: AnalyzeOptions): Promise<AlignedFace[]> {
    const image = isEncoded(input) ? await decodeFrame(input) : input;
    const detections =
      options?.smallFaces && options.smallFaces.mode !== "off"
        ? await detectSmallFaces(
            this.detector,
            image,
            { maxSide: options.maxSide },
            options.smallFaces,
            options.smallFaces.nmsIou,
          )
        : await this.detector.detect(image, options && { maxSide: options.maxSide });
    return detections.map((d) => this.alignDetection(image, d));
  }

  alignDetection(image: FrameImage, detection: Detection): AlignedFace {
    const { crop } = alignFace(
      image,
      detection.landmarks,
      this.target.template,
      this.target.width,
      this.target.height,
    );
    const quality = assessQuality(
      { box: detection.box, landmarks: detection.landmarks, detScore: detection.score, crop },
      this.gate,
    );
    return { detection, crop, quality };
  }
}
