import path from "node:path";
import type { Config } from "../config/index.ts";
import { FaceContract, type QualityScores } from "../contracts/index.ts";
import { samplePhotos } from "../media/sample-media.ts";
import type { Vision } from "../vision/inference/vision.ts";
import { decodeImage } from "../vision/pixels/image.ts";

/** A real aligned face as detect-align would publish it, minus the ids a test or bench gives it. */
export interface AlignedSample {
  crop: Uint8Array;
  cropSize: { width: number; height: number };
  box: { x: number; y: number; width: number; height: number };
  landmarks: [number, number][];
  quality: QualityScores;
  detectorModel: string;
}

/**
 * Every face that passes the quality gate in the MIT sample photos from npm (about twenty), detected and aligned
 * by the real models: input for the embed and match stages in tests and `bench pipeline`, with no detector run.
 */
export async function alignedSampleFaces(config: Config, vision: Vision): Promise<AlignedSample[]> {
  const out: AlignedSample[] = [];
  for (const photo of await samplePhotos(path.resolve(config.dataDir, "cache"))) {
    const image = await decodeImage(photo);
    for (const f of await vision.analyzer.analyze(image)) {
      if (f.quality.reasons.length > 0) continue;
      out.push({
        crop: f.crop.data,
        cropSize: { width: f.crop.width, height: f.crop.height },
        box: f.detection.box,
        landmarks: f.detection.landmarks as [number, number][],
        quality: f.quality.scores,
        detectorModel: vision.analyzer.detectorModelId,
      });
    }
  }
  return out;
}

/** The face message of `sample` seen on `cameraId` at `captureTs` in frame `frameSeq`. */
export function faceRecord(sample: AlignedSample, cameraId: string, frameSeq: number, captureTs: number) {
  return {
    key: cameraId,
    value: FaceContract.encode({
      faceId: `${cameraId}:${frameSeq}:0`,
      cameraId,
      frameSeq,
      captureTs,
      frameWidth: 1280,
      frameHeight: 720,
      box: sample.box,
      landmarks: sample.landmarks,
      quality: sample.quality,
      detectorModel: sample.detectorModel,
      cropSize: sample.cropSize,
      crop: sample.crop,
    }),
  };
}
