import type { Person } from "../watchlist-store.ts";
import type { RecordsPool } from "./records-pool.ts";

/**
 * The watchlist's people and per-watchlist thresholds: the records of a watchlist whose faces (vectors) stay in
 * Qdrant, keyed by the same person id. What the Qdrant store asks of wherever people are kept.
 */
export interface PeopleRecords {
  byId(ids: string[]): Promise<Map<string, Person>>;
  all(): Promise<Person[]>;
  upsert(person: Person): Promise<void>;
  remove(personId: string): Promise<void>;
  /** null clears it (the model's calibrated threshold applies again). */
  setThreshold(watchlistId: string, threshold: number | null): Promise<void>;
  threshold(watchlistId: string): Promise<number | undefined>;
  thresholds(): Promise<Map<string, number>>;
}

type PersonRow = { id: string; name: string; watchlist_id: string };
const toPerson = (r: PersonRow): Person => ({ id: r.id, name: r.name, watchlistId: r.watchlist_id });

export class PostgresPeople implements PeopleRecords {
  constructor(private readonly db: RecordsPool) {}

  async byId(ids: string[]) {
    if (ids.length === 0) return new Map<string, Person>();
    const rows = await this.db.rows<PersonRow>("SELECT * FROM people WHERE id = ANY($1::text[])", [ids]);
    return new Map(rows.map((r) => [r.id, toPerson(r)]));
  }

  async all() {
    return (await this.db.rows<PersonRow>('SELECT * FROM people ORDER BY id COLLATE "C"')).map(toPerson);
  }

  async upsert(p: Person) {
    await this.db.rows(
      `INSERT INTO people (id, name, watchlist_id) VALUES ($1, $2, $3)
       ON CONFLICT (id) DO UPDATE SET name = excluded.name, watchlist_id = excluded.watchlist_id`,
      [p.id, p.name, p.watchlistId],
    );
  }

  async remove(personId: string) {
    await this.db.rows("DELETE FROM people WHERE id = $1", [personId]);
  }

  async setThreshold(watchlistId: string, threshold: number | null) {
    if (threshold === null) {
      await this.db.rows("DELETE FROM watchlist_thresholds WHERE id = $1", [watchlistId]);
      return;
    }
    await this.db.rows(
      `INSERT INTO watchlist_thresholds (id, threshold) VALUES ($1, $2)
       ON CONFLICT (id) DO UPDATE SET threshold = excluded.threshold`,
      [watchlistId, threshold],
    );
  }

  async threshold(watchlistId: string) {
    const [row] = await this.db.rows<{ threshold: number }>(
      "SELECT threshold FROM watchlist_thresholds WHERE id = $1",
      [watchlistId],
    );
    return row?.threshold;
  }

  async thresholds() {
    const rows = await this.db.rows<{ id: string; threshold: number }>("SELECT * FROM watchlist_thresholds");
    return new Map(rows.map((r) => [r.id, r.threshold]));
  }
}
