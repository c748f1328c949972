import path from "node:path";
import type pg from "pg";
import { inTransaction } from "../postgres/pool.ts";
import { RECORD_MIGRATIONS, RECORDS_SCHEMA } from "../postgres/record-migrations.ts";
import { schemaVersion } from "../postgres/migrations.ts";
import { readJsonl, writeJsonl } from "./jsonl.ts";

/**
 * The record store's tables in the order a restore inserts them (a delivery names its webhook), each with the
 * key a dump is ordered by. The migration history is not among them: a restore migrates the target itself.
 */
export const RECORD_TABLES = [
  { name: "api_keys", key: "id" },
  { name: "audit_anchor", key: "id" },
  { name: "audit_log", key: "seq" },
  { name: "webhooks", key: "id" },
  { name: "webhook_deliveries", key: "id" },
  { name: "mqtt_outbox", key: "id" },
  { name: "alerts", key: "id" },
  { name: "state", key: "key" },
  { name: "people", key: "id" },
  { name: "watchlist_thresholds", key: "id" },
  { name: "photos", key: "face_id" },
  { name: "exclusions", key: "id" },
  { name: "unknowns", key: "id" },
] as const;

/** Binary columns (an alert's vector) as JSON: `{"$base64": "…"}`, and back. */
const toJson = (row: Record<string, unknown>) =>
  Object.fromEntries(
    Object.entries(row).map(([k, v]) => [k, Buffer.isBuffer(v) ? { $base64: v.toString("base64") } : v]),
  );
const fromJson = (v: unknown) =>
  v !== null && typeof v === "object" && "$base64" in v ? Buffer.from(String(v.$base64), "base64") : v;
const fromJsonRow = (row: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(row).map(([k, v]) => [k, fromJson(v ?? null)]));

/** Throws `refusal` for the first of `tables` that holds rows: a restore or an adoption never merges. */
export async function refuseRows(
  client: pg.PoolClient,
  tables: readonly string[],
  refusal: (table: string, rows: number) => string,
): Promise<void> {
  for (const table of tables) {
    const { rows } = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
    if (rows[0]!.n > 0) throw new Error(refusal(table, rows[0]!.n));
  }
}

/**
 * Inserts rows in one statement, their columns taken from the first row: rows written by an older schema lack
 * later columns, which take their defaults.
 */
export async function insertRows(
  client: pg.PoolClient,
  table: string,
  rows: Record<string, unknown>[],
): Promise<void> {
  if (rows.length === 0) return;
  const columns = Object.keys(rows[0]!);
  const values: unknown[] = [];
  const tuples = rows.map((row) => {
    const marks = columns.map((c) => {
      values.push(row[c] ?? null);
      return `$${values.length}`;
    });
    return `(${marks.join(", ")})`;
  });
  await client.query(`INSERT INTO ${table} (${columns.join(", ")}) VALUES ${tuples.join(", ")}`, values);
}

const PAGE = 1000;

/** Rows of a table, in key order, a page at a time (a large audit log is never held whole). */
async function* rowsOf(
  db: pg.PoolClient,
  table: string,
  key: string,
): AsyncGenerator<Record<string, unknown>> {
  let after: unknown = null;
  for (;;) {
    const { rows } = await db.query<Record<string, unknown>>(
      after === null
        ? `SELECT * FROM ${table} ORDER BY ${key} LIMIT ${PAGE}`
        : `SELECT * FROM ${table} WHERE ${key} > $1 ORDER BY ${key} LIMIT ${PAGE}`,
      after === null ? [] : [after],
    );
    for (const row of rows) yield toJson(row);
    if (rows.length < PAGE) return;
    after = rows.at(-1)![key];
  }
}

/**
 * Dumps every record table as JSON lines (`records/<table>.jsonl`): plain rows, readable by any later release and
 * by no tool but Vigil's restore, and independent of the server's version (pg_dump must be as new as the server).
 * One read-only snapshot for all tables, so the replicas may go on writing while it runs.
 */
export async function dumpRecords(
  pool: pg.Pool,
  dir: string,
  onTable: (table: string, rows: number) => void = () => {},
): Promise<{ schemaVersion: number; rows: Record<string, number> }> {
  const version = await schemaVersion(pool, RECORDS_SCHEMA);
  if (version === 0) throw new Error("the records database has no Vigil schema: nothing to back up");
  const rows: Record<string, number> = {};
  await inTransaction(
    pool,
    async (client) => {
      for (const t of RECORD_TABLES) {
        rows[t.name] = await writeJsonl(path.join(dir, `${t.name}.jsonl`), rowsOf(client, t.name, t.key));
        onTable(t.name, rows[t.name]!);
      }
    },
    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
  );
  return { schemaVersion: version, rows };
}

/**
 * Loads a dump into a records database already migrated by this release (the store's open does that), in one
 * transaction: all of it or nothing. Refused when the database holds records (a restore never merges), or when
 * the dump comes from a newer schema than this release knows.
 */
export async function restoreRecords(
  pool: pg.Pool,
  dir: string,
  dumpVersion: number,
  onTable: (table: string, rows: number) => void = () => {},
): Promise<Record<string, number>> {
  if (dumpVersion > RECORD_MIGRATIONS.length)
    throw new Error(
      `the backup's records are at schema version ${dumpVersion}, newer than this Vigil knows ` +
        `(${RECORD_MIGRATIONS.length}): restore it with that release or newer`,
    );
  return inTransaction(pool, async (client) => {
    await refuseRows(
      client,
      RECORD_TABLES.map((t) => t.name),
      (table, n) => `the records database is not empty (${table} has ${n} rows): restore into an empty one`,
    );
    const counts: Record<string, number> = {};
    for (const t of RECORD_TABLES) {
      let n = 0;
      for await (const batch of readJsonl<Record<string, unknown>>(path.join(dir, `${t.name}.jsonl`), 200)) {
        await insertRows(client, t.name, batch.map(fromJsonRow));
        n += batch.length;
      }
      counts[t.name] = n;
      onTable(t.name, n);
    }
    return counts;
  });
}
