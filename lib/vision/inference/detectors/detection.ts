import type { FrameImage } from "../../pixels/image.ts";
import { type Box, type Point } from "../../../geometry/index.ts";

export interface Detection {
  box: Box;
  score: number;
  /** Five points: eye left/right (as seen in the image), nose tip, mouth corner left/right. */
  landmarks: Point[];
}

export interface FaceDetector {
  readonly modelId: string;
  detect(image: FrameImage): Promise<Detection[]>;
}
