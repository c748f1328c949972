/**
 * The parameters of one SQL statement, each added with the marker its driver reads: `?` for SQLite, `$1`, `$2`, …
 * for PostgreSQL. Query builders shared by both stores add values through it and never write a marker themselves.
 */
export class SqlParams {
  readonly values: unknown[];

  constructor(
    private readonly style: "?" | "$n",
    /** Values the caller's own conditions already refer to, in order. */
    initial: readonly unknown[] = [],
  ) {
    this.values = [...initial];
  }

  /** Adds a value; returns the marker to write where it goes. */
  add(value: unknown): string {
    this.values.push(value);
    return this.style === "?" ? "?" : `$${this.values.length}`;
  }
}

/** `WHERE a AND b`, or nothing without conditions. */
export const whereClause = (conditions: readonly string[]) =>
  conditions.length ? `WHERE ${conditions.join(" AND ")}` : "";
