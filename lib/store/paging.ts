import { InvalidInputError } from "./errors.ts";

/**
 * Keyset paging, newest first. A cursor names the last item of the previous page by (time, id), so rows written
 * while an operator pages (new alerts arrive all the time) neither shift nor repeat the pages that follow.
 */
export interface PageRequest {
  limit: number;
  /** `nextCursor` of the previous page; absent for the first page. */
  cursor?: string;
}

export interface Page<T> {
  items: T[];
  /** Null on the last page. */
  nextCursor: string | null;
}

export interface CursorPosition {
  ts: number;
  id: string;
}

export function encodeCursor(position: CursorPosition): string {
  return Buffer.from(JSON.stringify([position.ts, position.id])).toString("base64url");
}

export function decodeCursor(cursor: string): CursorPosition {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    parsed = undefined;
  }
  if (
    !Array.isArray(parsed) ||
    parsed.length !== 2 ||
    typeof parsed[0] !== "number" ||
    !Number.isFinite(parsed[0]) ||
    typeof parsed[1] !== "string"
  )
    throw new InvalidInputError(`not a paging cursor: ${JSON.stringify(cursor)}`);
  return { ts: parsed[0], id: parsed[1] };
}

export const MAX_PAGE = 1000;

/** A page size every store accepts: 1 … MAX_PAGE. */
export function checkLimit(limit: number): number {
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE)
    throw new InvalidInputError(`page size must be an integer from 1 to ${MAX_PAGE}, got ${limit}`);
  return limit;
}

/** Newest first, ties by id descending: the one order every store pages in. */
export function newestFirst(a: CursorPosition, b: CursorPosition): number {
  return b.ts - a.ts || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

/** Whether `p` comes after the cursor in newest-first order. */
export function isAfter(p: CursorPosition, cursor: CursorPosition): boolean {
  return p.ts < cursor.ts || (p.ts === cursor.ts && p.id < cursor.id);
}
