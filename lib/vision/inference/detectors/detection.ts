import type { FrameImage } from "../../pixels/image.ts";
import { type Box, type Point } from "../../../geometry/index.ts";

export interface Detection {
  box: Box;
  score: number;
  /** Five points: eye left/right (as seen in the image), nose tip, mouth corner left/right. */
  landmarks: Point[];
}

/** Per call: what a camera's config asks of detection (see detect.maxSide). */
export interface DetectOptions {
  /** The longer side the frame is resized to before detection; the detector's configured value if unset. */
  maxSide?: number;
}

export interface FaceDetector {
  readonly modelId: string;
  detect(image: FrameImage, options?: DetectOptions): Promise<Detection[]>;
}
