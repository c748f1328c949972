import {
  AlertContract,
  CameraStatusContract,
  DeadLetterContract,
  EmbeddingContract,
  SightingContract,
  Topics,
  type QualityScores,
} from "../contracts/index.ts";
import type { Box } from "../geometry/index.ts";

/** What Vigil tells the people watching it: the CLI prints these, the API streams them. */

export type VigilEvent =
  | {
      type: "camera";
      cameraId: string;
      state: string;
      ts: number;
      lastError: string | null;
      framesIn: number;
      framesDropped: number;
      framesUndecodable: number;
      reconnects: number;
      /** Cameras asked to record: whether they are, and why not. */
      recording?: { on: boolean; reason: string | null };
    }
  | {
      type: "face";
      cameraId: string;
      ts: number;
      faceId: string;
      box: Box;
      quality: QualityScores;
      modelId: string;
    }
  | {
      type: "alert";
      personId: string;
      name: string;
      score: number;
      threshold: number;
      cameraId: string;
      ts: number;
      faceId: string;
      alertId: string;
      modelId: string;
    }
  | {
      type: "sighting";
      sightingId: string;
      cameraId: string;
      startTs: number;
      endTs: number;
      faces: number;
      personId: string | null;
      score: number | null;
      /** The unknown identity a sighting of nobody on the watchlist joined; null when none was assigned. */
      unknownId: string | null;
    }
  | { type: "enrol"; personId: string; file: string; ok: boolean; reason?: string }
  | { type: "dead-letter"; sourceTopic: string; key: string; reason: string; ts: number }
  | { type: "warning"; message: string }
  | { type: "summary"; [k: string]: unknown };

/** The topics the event projection reads, one consumer group for all. */
export const EventTopics = [
  Topics.embeddings,
  Topics.alerts,
  Topics.sightings,
  Topics.cameraStatus,
  Topics.dlq,
] as const;

/** A bus record as an event; one place, so the CLI and the API say the same thing about a message. */
export function projectRecord(topic: string, value: Uint8Array): VigilEvent | undefined {
  switch (topic) {
    case Topics.embeddings: {
      const f = EmbeddingContract.decode(value);
      return {
        type: "face",
        cameraId: f.cameraId,
        ts: f.captureTs,
        faceId: f.faceId,
        box: f.box,
        quality: f.quality,
        modelId: f.modelId,
      };
    }
    case Topics.alerts: {
      const a = AlertContract.decode(value);
      return {
        type: "alert",
        personId: a.personId,
        name: a.personName,
        score: a.score,
        threshold: a.threshold,
        cameraId: a.cameraId,
        ts: a.ts,
        faceId: a.faceId,
        alertId: a.alertId,
        modelId: a.modelId,
      };
    }
    case Topics.sightings: {
      const s = SightingContract.decode(value);
      return {
        type: "sighting",
        sightingId: s.sightingId,
        cameraId: s.cameraId,
        startTs: s.startTs,
        endTs: s.endTs,
        faces: s.faces,
        personId: s.match?.personId ?? null,
        score: s.match?.score ?? null,
        unknownId: s.unknownId ?? null,
      };
    }
    case Topics.cameraStatus: {
      const { recording, ...status } = CameraStatusContract.decode(value);
      return { type: "camera", ...status, ...(recording ? { recording } : {}) };
    }
    case Topics.dlq: {
      const d = DeadLetterContract.decode(value);
      return { type: "dead-letter", sourceTopic: d.sourceTopic, key: d.key, reason: d.reason, ts: d.ts };
    }
    default:
      return undefined;
  }
}
