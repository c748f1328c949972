import { alignFace } from "../pixels/align.ts";
import type { Detection, FaceDetector } from "./detectors/detection.ts";
import { detectSmallFaces, type SmallFaceOptions } from "./detectors/small-faces.ts";
import type { BgrImage, FrameImage } from "../pixels/image.ts";
import { assessQuality, type QualityGateConfig, type QualityVerdict } from "../pixels/quality.ts";
import { type Point } from "../../geometry/index.ts";

export interface AlignedFace {
  detection: Detection;
  crop: BgrImage;
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

/** What the detect-align stage needs: frames in, aligned and quality-scored faces out. */
export interface FrameAnalyzer {
  readonly detectorModelId: string;
  analyze(image: FrameImage, options?: AnalyzeOptions): Promise<AlignedFace[]>;
}

/** Detect → align to the embedder's template → quality: the path live video and enrolment photos share. */
export class FaceAnalyzer implements FrameAnalyzer {
  constructor(
    readonly detector: FaceDetector,
    private readonly target: AlignmentTarget,
    private readonly gate: QualityGateConfig,
  ) {}

  get detectorModelId(): string {
    return this.detector.modelId;
  }

  async analyze(image: FrameImage, options?: AnalyzeOptions): Promise<AlignedFace[]> {
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
