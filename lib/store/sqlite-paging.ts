import type Database from "better-sqlite3";
import { keysetResult, keysetStatement } from "./keyset.ts";
import type { CursorPosition, Page, PageRequest } from "./paging.ts";
import { SqlParams } from "./sql-params.ts";

/**
 * One page, newest first, of rows read by keyset (see keysetStatement). `from` is the `SELECT … FROM table` part;
 * `where` and `params` are the caller's filters (with `?` markers), extended here with the cursor's.
 */
export function keysetPage<Row, T>(
  db: Database.Database,
  query: {
    from: string;
    tsColumn: string;
    where: string[];
    params: unknown[];
    request: PageRequest;
  },
  toItem: (row: Row) => T,
  position: (item: T) => CursorPosition,
): Page<T> {
  const params = new SqlParams("?", query.params);
  const { sql, limit } = keysetStatement(query, params);
  return keysetResult(db.prepare(sql).all(...params.values) as Row[], limit, toItem, position);
}
