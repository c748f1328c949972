import type pg from "pg";
import { LOCKS } from "./locks.ts";
import { inTransaction } from "./pool.ts";

/** One step of a schema: applied once, in order, never edited after it shipped (add the next one instead). */
export interface Migration {
  /** 1, 2, 3, … without gaps: the schema version once this step is applied. */
  version: number;
  /** What it does, in a few words; recorded beside the version. */
  name: string;
  /** One or more statements, run as one simple query inside the migration transaction. */
  sql: string;
}

/**
 * The database was migrated by a newer Vigil: this code would misread or damage what it does not know. A process
 * refuses to start on it; one that first reaches the database later (it was away at the start) and finds it
 * newer waits, redelivering, as for a database that is away, since dead-lettering would lose records the newer
 * replicas can store. (A process already connected does not look again: a rolling upgrade replaces it.)
 */
export class SchemaTooNewError extends Error {
  override name = "SchemaTooNewError";
  readonly transient = true;
}

export interface MigrationResult {
  /** The schema version found (0: a database this schema had never touched). */
  from: number;
  to: number;
  /** The versions this call applied; empty when another process had done it, or nothing was pending. */
  applied: number[];
}

/** One row per applied migration, per schema: several schemas may share a database, each with its own versions. */
const HISTORY_TABLE = `
CREATE TABLE IF NOT EXISTS vigil_schema_migrations (
  schema_name TEXT NOT NULL,
  version INTEGER NOT NULL,
  name TEXT NOT NULL,
  applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (schema_name, version))`;

function checkSequence(schema: string, migrations: readonly Migration[]) {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1)
      throw new Error(
        `the ${schema} migrations must be numbered 1, 2, 3, … in order; found version ${m.version} at position ${i + 1}`,
      );
  });
}

/**
 * Brings `schema` up to the newest of `migrations`, as every process does at start. Under an advisory lock, in
 * one transaction: when several processes start at once, the first migrates and the others wait, then find the
 * work done; a migration that fails rolls back every step of this call, leaving the version it found. A database
 * whose version is newer than the code knows is refused with SchemaTooNewError, and left untouched.
 */
export async function migrate(
  pool: pg.Pool,
  schema: string,
  migrations: readonly Migration[],
): Promise<MigrationResult> {
  checkSequence(schema, migrations);
  const known = migrations.length;
  return inTransaction(pool, async (client) => {
    // Transaction-scoped: released by the COMMIT or ROLLBACK, so a process that dies mid-migration cannot
    // leave it held.
    await client.query("SELECT pg_advisory_xact_lock($1)", [LOCKS.migrations]);
    await client.query(HISTORY_TABLE);
    const { rows } = await client.query<{ version: number | null }>(
      "SELECT max(version) AS version FROM vigil_schema_migrations WHERE schema_name = $1",
      [schema],
    );
    const from = rows[0]?.version ?? 0;
    if (from > known)
      throw new SchemaTooNewError(
        `the database's ${schema} schema is at version ${from}, newer than this Vigil knows (${known}): ` +
          `it was migrated by a newer release. Run that release (or newer), or point this one at another database`,
      );
    const applied: number[] = [];
    for (const m of migrations.slice(from)) {
      try {
        await client.query(m.sql);
      } catch (err) {
        throw new Error(
          `${schema} migration ${m.version} (${m.name}) failed, nothing of this start's migrations was kept: ${(err as Error).message}`,
          { cause: err },
        );
      }
      await client.query(
        "INSERT INTO vigil_schema_migrations (schema_name, version, name) VALUES ($1, $2, $3)",
        [schema, m.version, m.name],
      );
      applied.push(m.version);
    }
    return { from, to: known, applied };
  });
}

/** The schema's version in this database (0 when never migrated), without changing anything. */
export async function schemaVersion(pool: pg.Pool, schema: string): Promise<number> {
  const { rows } = await pool
    .query<{ version: number | null }>(
      `SELECT max(version) AS version FROM vigil_schema_migrations WHERE schema_name = $1`,
      [schema],
    )
    .catch((err: { code?: string }) => {
      // 42P01: no such table, a database no Vigil has migrated.
      if (err.code === "42P01") return { rows: [{ version: 0 }] };
      throw err;
    });
  return rows[0]?.version ?? 0;
}
