import {
  checkLimit,
  decodeCursor,
  encodeCursor,
  type CursorPosition,
  type Page,
  type PageRequest,
} from "./paging.ts";
import { whereClause, type SqlParams } from "./sql-params.ts";

export interface KeysetQuery {
  /** The `SELECT … FROM table` part. */
  from: string;
  tsColumn: string;
  /** The caller's filters, their values already in the statement's parameters. */
  where: string[];
  request: PageRequest;
}

/**
 * The statement of one page, newest first, read by keyset (`tsColumn` descending, then `id`): the cursor names the
 * last row seen, so rows written while someone pages neither shift nor repeat the pages that follow. One row more
 * than the page is asked for, to tell whether another page follows (`keysetResult`). Shared by the SQLite and
 * PostgreSQL stores, which differ only in how they run it.
 */
export function keysetStatement(query: KeysetQuery, params: SqlParams): { sql: string; limit: number } {
  const limit = checkLimit(query.request.limit);
  const where = [...query.where];
  if (query.request.cursor) {
    const c = decodeCursor(query.request.cursor);
    const ts = query.tsColumn;
    where.push(`(${ts} < ${params.add(c.ts)} OR (${ts} = ${params.add(c.ts)} AND id < ${params.add(c.id)}))`);
  }
  return {
    sql: `${query.from} ${whereClause(where)} ORDER BY ${query.tsColumn} DESC, id DESC LIMIT ${params.add(limit + 1)}`,
    limit,
  };
}

/** The page from the rows `keysetStatement`'s statement returned. */
export function keysetResult<Row, T>(
  rows: Row[],
  limit: number,
  toItem: (row: Row) => T,
  position: (item: T) => CursorPosition,
): Page<T> {
  const items = rows.slice(0, limit).map(toItem);
  const last = items.at(-1);
  return { items, nextCursor: rows.length > limit && last ? encodeCursor(position(last)) : null };
}
