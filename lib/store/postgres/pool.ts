import pg from "pg";
import { within } from "../../util/within.ts";

/** The URL with its password masked: what an error message or a log line may show. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(a connection string that is not a URL)";
  }
}

/**
 * BIGINT (int8) columns read as numbers, not the strings pg returns by default: the records keep millisecond
 * times and sequence numbers, far below 2^53. Per pool, not pg's global parser, so other pools are untouched.
 */
const INT8_OID = 20;
const types = {
  getTypeParser(oid: number, format?: "text" | "binary") {
    if (oid === INT8_OID && format !== "binary") return (value: string) => Number(value);
    return pg.types.getTypeParser(oid, format);
  },
} as pg.CustomTypesConfig;

export interface PoolOptions {
  /** Connections this process keeps at most (pg's default: 10). */
  max?: number;
  /** How long a connection attempt may take before it fails. */
  connectTimeoutMs?: number;
  /** Told of an error on an idle connection (the server restarted): the pool drops it and makes another. */
  onIdleError?: (err: Error) => void;
}

/**
 * A pool on `url`, checked by one query before it is handed out, so a wrong address or a refused login fails at
 * start with "cannot connect to PostgreSQL at <url>: <reason>" (password masked) rather than on the first write.
 */
export async function openPool(url: string, options: PoolOptions = {}): Promise<pg.Pool> {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
    types,
  });
  // An idle connection the server drops emits "error" on the pool; unhandled, that would end the process.
  pool.on("error", (err) => options.onIdleError?.(err));
  try {
    await pool.query("SELECT 1");
  } catch (err) {
    await pool.end().catch(() => {});
    throw new Error(`cannot connect to PostgreSQL at ${redactUrl(url)}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return pool;
}

/**
 * Runs `work` in one transaction on one connection: committed when it returns, rolled back when it throws (the
 * error goes on). Everything `work` does must go through the client it is given.
 */
export async function inTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
  /** The statement that opens it: `BEGIN`, or one with an isolation level or READ ONLY. */
  begin = "BEGIN",
): Promise<T> {
  const client = await pool.connect();
  // A connection whose ROLLBACK failed is in an unknown state: destroyed (release with an error), not reused.
  let broken: Error | undefined;
  try {
    await client.query(begin);
    const result = await work(client);
    await client.query("COMMIT");
    return result;
  } catch (err) {
    await client.query("ROLLBACK").catch((e: Error) => (broken = e));
    throw err;
  } finally {
    client.release(broken);
  }
}

/** Whether the server answers a trivial query within 2 s: one that is down refuses at once, one cut off hangs. */
export function answers(pool: pg.Pool): Promise<boolean> {
  return within(pool.query("SELECT 1"), 2000, "PostgreSQL's answer").then(
    () => true,
    () => false,
  );
}
