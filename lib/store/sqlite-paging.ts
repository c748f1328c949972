import type Database from "better-sqlite3";
import {
  checkLimit,
  decodeCursor,
  encodeCursor,
  type CursorPosition,
  type Page,
  type PageRequest,
} from "./paging.ts";

/**
 * One page, newest first, of rows read by keyset (`tsColumn` descending, then `id`): the cursor names the last
 * row seen, so rows written while someone pages neither shift nor repeat the pages that follow. `from` is the
 * `SELECT … FROM table` part; `where` and `params` are the caller's filters, extended here with the cursor's.
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
  const limit = checkLimit(query.request.limit);
  const where = [...query.where];
  const params = [...query.params];
  if (query.request.cursor) {
    const c = decodeCursor(query.request.cursor);
    where.push(`(${query.tsColumn} < ? OR (${query.tsColumn} = ? AND id < ?))`);
    params.push(c.ts, c.ts, c.id);
  }
  const rows = db
    .prepare(
      `${query.from} ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
       ORDER BY ${query.tsColumn} DESC, id DESC LIMIT ?`,
    )
    .all(...params, limit + 1) as Row[];
  const items = rows.slice(0, limit).map(toItem);
  const last = items.at(-1);
  return { items, nextCursor: rows.length > limit && last ? encodeCursor(position(last)) : null };
}
