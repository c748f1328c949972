import type pg from "pg";
import { bytesToVector, vectorToBytes } from "../../contracts/index.ts";
import { ALERT_COLUMNS, alertConditions, toAlert, type AlertRow } from "../alert-rows.ts";
import type {
  Acknowledgement,
  AlertFilter,
  AlertQuery,
  AlertRecord,
  AlertStore,
  NewAlert,
} from "../alert-store.ts";
import { cropKey, putCrops, type CropStore } from "../crop-store.ts";
import { keysetResult, keysetStatement } from "../keyset.ts";
import type { Page } from "../paging.ts";
import { SqlParams, whereClause } from "../sql-params.ts";
import { inTransaction } from "./pool.ts";
import type { RecordsPool } from "./records-pool.ts";

const BATCH = 200;

/**
 * Alerts as rows of the records database (`store.records.kind: postgres`) beside a Qdrant store: an alert is a
 * record (acknowledged, filtered, paged by time), not a vector to search, so it lives where records have
 * transactions and backups. Its crop stays in the deployment's crop store, under the key the Qdrant store uses.
 */
export class PostgresAlertStore implements AlertStore {
  constructor(
    private readonly db: RecordsPool,
    private readonly crops: CropStore,
  ) {}

  private rows<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
    return this.db.rows<R>(sql, params);
  }

  async addAlerts(alerts: NewAlert[]) {
    if (alerts.length === 0) return;
    // Crops first: a row never names a crop that was not written. An empty one is no crop (an alert adopted
    // from an old store that had none).
    await putCrops(
      this.crops,
      alerts.filter((a) => a.crop.length > 0).map((a) => [cropKey("alerts", a.id), a.crop]),
    );
    await inTransaction(await this.db.get(), async (client) => {
      for (let i = 0; i < alerts.length; i += BATCH) {
        const params = new SqlParams("$n");
        const tuples = alerts.slice(i, i + BATCH).map((a) => {
          const values = [
            a.id,
            a.watchlistId,
            a.personId,
            a.personName,
            a.cameraId,
            a.ts,
            a.score,
            a.threshold,
            a.modelId,
            a.faceId,
            JSON.stringify(a.box),
            a.vector ? Buffer.from(vectorToBytes(a.vector)) : null,
            a.matchedFaceId ?? null,
          ];
          return `(${values.map((v) => params.add(v)).join(", ")})`;
        });
        // The acknowledgement is left out of the update: a replay must not undo an operator's ack.
        await client.query(
          `INSERT INTO alerts (id, watchlist_id, person_id, person_name, camera_id, ts, score, threshold, model_id,
             face_id, box, vector, matched_face_id)
           VALUES ${tuples.join(", ")}
           ON CONFLICT (id) DO UPDATE SET watchlist_id = excluded.watchlist_id, person_id = excluded.person_id,
             person_name = excluded.person_name, camera_id = excluded.camera_id, ts = excluded.ts,
             score = excluded.score, threshold = excluded.threshold, model_id = excluded.model_id,
             face_id = excluded.face_id, box = excluded.box, vector = coalesce(excluded.vector, alerts.vector),
             matched_face_id = coalesce(excluded.matched_face_id, alerts.matched_face_id)`,
          params.values,
        );
      }
    });
  }

  async getAlert(id: string) {
    const [row] = await this.rows<AlertRow & { vector: Buffer | null }>(
      `SELECT ${ALERT_COLUMNS}, vector FROM alerts WHERE id = $1`,
      [id],
    );
    return row ? { ...toAlert(row), vector: row.vector ? bytesToVector(row.vector) : null } : undefined;
  }

  async alertVectors(ids: string[]) {
    const out = new Map<string, Float32Array>();
    if (ids.length === 0) return out;
    const rows = await this.rows<{ id: string; vector: Buffer }>(
      "SELECT id, vector FROM alerts WHERE vector IS NOT NULL AND id = ANY($1::text[])",
      [ids],
    );
    for (const r of rows) out.set(r.id, bytesToVector(r.vector));
    return out;
  }

  async alertCrop(id: string) {
    return this.crops.get(cropKey("alerts", id));
  }

  async listAlerts(q: AlertQuery): Promise<Page<AlertRecord>> {
    const params = new SqlParams("$n");
    const where = alertConditions(q, params);
    const { sql, limit } = keysetStatement(
      { from: `SELECT ${ALERT_COLUMNS} FROM alerts`, tsColumn: "ts", where, request: q },
      params,
    );
    return keysetResult(await this.rows<AlertRow>(sql, params.values), limit, toAlert, (a) => ({
      ts: a.ts,
      id: a.id,
    }));
  }

  async countAlerts(filter: AlertFilter = {}) {
    const params = new SqlParams("$n");
    const where = alertConditions(filter, params);
    const [row] = await this.rows<{ n: number }>(
      `SELECT count(*)::int AS n FROM alerts ${whereClause(where)}`,
      params.values,
    );
    return row!.n;
  }

  async acknowledgeAlert(id: string, ack: Acknowledgement) {
    // The first acknowledgement stands, whichever replica wrote it first.
    await this.rows(
      "UPDATE alerts SET ack_by = $1, ack_ts = $2, ack_note = $3 WHERE id = $4 AND ack_by IS NULL",
      [ack.by, ack.ts, ack.note, id],
    );
    const [row] = await this.rows<AlertRow>(`SELECT ${ALERT_COLUMNS} FROM alerts WHERE id = $1`, [id]);
    return row ? toAlert(row) : undefined;
  }

  async lastAlert(personId: string, cameraId: string, beforeTs: number) {
    const [row] = await this.rows<AlertRow>(
      `SELECT ${ALERT_COLUMNS} FROM alerts WHERE person_id = $1 AND camera_id = $2 AND ts < $3
       ORDER BY ts DESC, id DESC LIMIT 1`,
      [personId, cameraId, beforeTs],
    );
    return row ? toAlert(row) : undefined;
  }

  async purgeAlertsBefore(ts: number) {
    const gone = await this.rows<{ id: string }>("DELETE FROM alerts WHERE ts < $1 RETURNING id", [ts]);
    // Rows first: a crop left behind by a failure here is only bytes, never a record without its face.
    await this.crops.delete(gone.map((r) => cropKey("alerts", r.id)));
    return gone.length;
  }
}
