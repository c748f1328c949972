import type { AlertMessage } from "../contracts/index.ts";
import type { Box } from "../geometry/index.ts";
import type { Page, PageRequest } from "./paging.ts";

export interface Acknowledgement {
  by: string;
  ts: number;
  note: string | null;
}

/** A watchlist hit as stored: what `vigil.alerts` carries, plus whether an operator has dealt with it. */
export interface AlertRecord {
  id: string;
  watchlistId: string;
  personId: string;
  personName: string;
  cameraId: string;
  ts: number;
  score: number;
  threshold: number;
  modelId: string;
  faceId: string;
  box: Box;
  /**
   * The enrolled face (`<person>:<file>`) that matched best; null for alerts raised before it was recorded.
   */
  matchedFaceId: string | null;
  acknowledged: Acknowledgement | null;
}

export interface NewAlert extends Omit<AlertRecord, "acknowledged" | "matchedFaceId"> {
  matchedFaceId?: string | null;
  /** JPEG of the face that alerted. */
  crop: Uint8Array;
  /**
   * The face's vector (of `modelId`), kept so "this is not X" can be said from the alert alone. Optional because
   * `vigil.alerts` does not carry it; an alert stored without it can still be excluded from its crop.
   */
  vector?: Float32Array | null;
}

export interface AlertQuery extends PageRequest {
  cameras?: string[];
  personId?: string;
  watchlistId?: string;
  /** Inclusive bounds on the alert's capture time. */
  since?: number;
  until?: number;
  acknowledged?: boolean;
}

export type AlertFilter = Omit<AlertQuery, "limit" | "cursor">;

/** Every alert raised, newest first; the embedded and Qdrant stores implement it. */
export interface AlertStore {
  /** Idempotent by id: a replayed alert replaces itself and never clears an acknowledgement. */
  addAlerts(alerts: NewAlert[]): Promise<void>;
  getAlert(id: string): Promise<(AlertRecord & { vector: Float32Array | null }) | undefined>;
  alertCrop(id: string): Promise<Uint8Array | undefined>;
  listAlerts(query: AlertQuery): Promise<Page<AlertRecord>>;
  /**
   * The stored face vectors of these alerts, in one call (`getAlert` is one per alert); an alert that does not
   * exist or was stored without its vector is not in the map.
   */
  alertVectors(ids: string[]): Promise<Map<string, Float32Array>>;
  countAlerts(filter?: AlertFilter): Promise<number>;
  /**
   * Marks an alert as dealt with. The first acknowledgement stands (a second one returns the record unchanged);
   * undefined when there is no such alert.
   */
  acknowledgeAlert(id: string, ack: Acknowledgement): Promise<AlertRecord | undefined>;
  /**
   * The newest alert for this person on this camera strictly before `beforeTs`: what an alert cool-down needs
   * after a restart. Strictly before, so a replayed face sees what it saw the first time and decides the same.
   */
  lastAlert(personId: string, cameraId: string, beforeTs: number): Promise<AlertRecord | undefined>;
  /** Deletes alerts raised before `ts`; returns how many. */
  purgeAlertsBefore(ts: number): Promise<number>;
}

/** A `vigil.alerts` message as a record to store; the vector, which the topic does not carry, when the caller has it. */
export function alertFromMessage(
  m: AlertMessage,
  vector?: Float32Array | null,
): NewAlert & Pick<AlertRecord, "matchedFaceId"> {
  return {
    id: m.alertId,
    watchlistId: m.watchlistId,
    personId: m.personId,
    personName: m.personName,
    cameraId: m.cameraId,
    ts: m.ts,
    score: m.score,
    threshold: m.threshold,
    modelId: m.modelId,
    faceId: m.faceId,
    box: m.box,
    matchedFaceId: m.matchedFaceId ?? null,
    crop: m.crop,
    vector: vector ?? null,
  };
}
