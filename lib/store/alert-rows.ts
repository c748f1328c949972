import type { Box } from "../geometry/index.ts";
import type { AlertFilter, AlertRecord } from "./alert-store.ts";
import type { SqlParams } from "./sql-params.ts";

/** An alert as a row: the same columns in the embedded SQLite store and in PostgreSQL. */
export interface AlertRow {
  id: string;
  watchlist_id: string;
  person_id: string;
  person_name: string;
  camera_id: string;
  ts: number;
  score: number;
  threshold: number;
  model_id: string;
  face_id: string;
  box: string;
  matched_face_id: string | null;
  ack_by: string | null;
  ack_ts: number | null;
  ack_note: string | null;
}

/** Every column of a record, not its vector or crop (read only where asked for). */
export const ALERT_COLUMNS =
  "id, watchlist_id, person_id, person_name, camera_id, ts, score, threshold, model_id, face_id, box, matched_face_id, ack_by, ack_ts, ack_note";

export const toAlert = (r: AlertRow): AlertRecord => ({
  id: r.id,
  watchlistId: r.watchlist_id,
  personId: r.person_id,
  personName: r.person_name,
  cameraId: r.camera_id,
  ts: r.ts,
  score: r.score,
  threshold: r.threshold,
  modelId: r.model_id,
  faceId: r.face_id,
  box: JSON.parse(r.box) as Box,
  matchedFaceId: r.matched_face_id,
  acknowledged: r.ack_by !== null ? { by: r.ack_by, ts: r.ack_ts ?? 0, note: r.ack_note } : null,
});

/** The conditions of an alert filter, their values added to `params` in the order they appear. */
export function alertConditions(q: AlertFilter, params: SqlParams): string[] {
  const where: string[] = [];
  if (q.cameras && q.cameras.length > 0)
    where.push(`camera_id IN (${q.cameras.map((c) => params.add(c)).join(", ")})`);
  if (q.since !== undefined) where.push(`ts >= ${params.add(q.since)}`);
  if (q.until !== undefined) where.push(`ts <= ${params.add(q.until)}`);
  if (q.personId !== undefined) where.push(`person_id = ${params.add(q.personId)}`);
  if (q.watchlistId !== undefined) where.push(`watchlist_id = ${params.add(q.watchlistId)}`);
  if (q.acknowledged !== undefined) where.push(q.acknowledged ? "ack_by IS NOT NULL" : "ack_by IS NULL");
  return where;
}
