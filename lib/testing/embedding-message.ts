import type { BusRecord } from "../bus/bus.ts";
import { Topics, vectorToBytes, type EmbeddingMessage, type QualityScores } from "../contracts/index.ts";

/**
 * An embedding message as the embed stage would publish it for face `seq` of a camera: a plausible box and
 * five landmarks that move with `seq` (so consecutive faces track), a tiny crop, and the given vector.
 */
export function embeddingMessage(face: {
  cameraId: string;
  seq: number;
  ts: number;
  vector: Float32Array;
  modelId: string;
  quality: QualityScores;
}): EmbeddingMessage {
  const { cameraId, seq, vector } = face;
  return {
    faceId: `${cameraId}:${seq}:0`,
    cameraId,
    frameSeq: seq,
    captureTs: face.ts,
    frameWidth: 1280,
    frameHeight: 720,
    box: { x: 100 + seq, y: 80, width: 90, height: 90 },
    landmarks: [
      [120, 110],
      [160, 110],
      [140, 130],
      [125, 150],
      [155, 150],
    ],
    quality: face.quality,
    detectorModel: "yunet-2026may",
    cropSize: { width: 2, height: 2 },
    crop: Uint8Array.from({ length: 12 }, (_, i) => i * 20 + seq),
    modelId: face.modelId,
    dim: vector.length,
    vector: vectorToBytes(vector),
  };
}

/** Messages as a runner hands them to the match stage: every record on partition 0 of the embeddings topic. */
export const partitionBatch = (messages: EmbeddingMessage[], firstOffset: number) => ({
  messages,
  info: {
    records: messages.map((m, i): BusRecord => ({
      topic: Topics.embeddings,
      partition: 0,
      offset: String(firstOffset + i),
      timestamp: m.captureTs,
      key: m.cameraId,
      value: new Uint8Array(0),
    })),
  },
});
