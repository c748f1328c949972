const TRANSIENT_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "SQLITE_BUSY",
  "SQLITE_LOCKED",
  // PostgreSQL: the server shutting down or restarting, still starting, out of connections; a transaction that
  // lost a serialization conflict or a deadlock (it succeeds when tried again).
  "57P01",
  "57P02",
  "57P03",
  "53300",
  "40001",
  "40P01",
]);

/** Marks a failure that says nothing about the record: a dependency is away and will be back. */
export class TransientError extends Error {
  override name = "TransientError";
  readonly transient = true;
}

/**
 * Whether a failure is the world's fault (a broker, store or model server away) rather than the record's.
 * The runner waits out the first kind, redelivering, and dead-letters a record only for the second.
 */
export function isTransient(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const x = e as {
      transient?: unknown;
      code?: unknown;
      name?: unknown;
      message?: unknown;
      retriable?: unknown;
    };
    if (x.transient === true || x.retriable === true) return true;
    if (typeof x.code === "string" && TRANSIENT_CODES.has(x.code)) return true;
    // PostgreSQL's connection exceptions (SQLSTATE class 08).
    if (typeof x.code === "string" && /^08[0-9A-Z]{3}$/.test(x.code)) return true;
    if (
      typeof x.name === "string" &&
      /^KafkaJS(Connection|RequestTimeout|NumberOfRetriesExceeded)/.test(x.name)
    )
      return true;
    if (
      typeof x.message === "string" &&
      /fetch failed|socket hang up|connect ECONNREFUSED|Connection terminated|Client has encountered a connection error/i.test(
        x.message,
      )
    )
      return true;
  }
  return false;
}
