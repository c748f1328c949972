import type { StateStore } from "../state-store.ts";
import type { RecordsPool } from "./records-pool.ts";

/** The match stage's checkpoints as rows of the records database, beside a Qdrant store. */
export class PostgresStateStore implements StateStore {
  constructor(private readonly db: RecordsPool) {}

  async saveState(key: string, bytes: Uint8Array) {
    await this.db.rows(
      `INSERT INTO state (key, value, updated_ts) VALUES ($1, $2, $3)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_ts = excluded.updated_ts`,
      [key, Buffer.from(bytes), Date.now()],
    );
  }

  async loadState(key: string) {
    const [row] = await this.db.rows<{ value: Buffer }>("SELECT value FROM state WHERE key = $1", [key]);
    return row ? new Uint8Array(row.value) : undefined;
  }

  async deleteState(key: string) {
    return (await this.db.rows("DELETE FROM state WHERE key = $1 RETURNING key", [key])).length > 0;
  }

  async stateKeys(prefix = "") {
    // LIKE with the prefix's own wildcards escaped: a key may contain % or _.
    const pattern = `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    const rows = await this.db.rows<{ key: string }>(
      'SELECT key FROM state WHERE key LIKE $1 ORDER BY key COLLATE "C"',
      [pattern],
    );
    return rows.map((r) => r.key);
  }
}
