import type pg from "pg";
import { migrate } from "./migrations.ts";
import { answers, inTransaction, openPool, type PoolOptions } from "./pool.ts";
import { RECORD_MIGRATIONS, RECORDS_SCHEMA } from "./record-migrations.ts";

/**
 * The records database as the stages' store uses it: connected and migrated on first use, and again after a
 * failure, so a process starts while the database is away and goes on once it is back (its calls fail meanwhile,
 * and the bus redelivers what they were for).
 */
export class RecordsPool {
  private opening: Promise<pg.Pool> | undefined;
  private pool: pg.Pool | undefined;

  constructor(
    private readonly url: string,
    private readonly options: PoolOptions = {},
  ) {}

  get(): Promise<pg.Pool> {
    this.opening ??= (async () => {
      const pool = await openPool(this.url, this.options);
      try {
        await migrate(pool, RECORDS_SCHEMA, RECORD_MIGRATIONS);
      } catch (err) {
        await pool.end();
        throw err;
      }
      this.pool = pool;
      return pool;
    })();
    this.opening.catch(() => (this.opening = undefined));
    return this.opening;
  }

  async rows<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
    return (await (await this.get()).query<R>(sql, params)).rows;
  }

  /** Runs `work` in one transaction (see inTransaction). */
  async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(await this.get(), work);
  }

  /** Readiness: connected (or connecting now) and answering. */
  async healthy(): Promise<boolean> {
    try {
      return await answers(await this.get());
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    await this.pool?.end();
  }
}
