import type { z } from "zod";
import type { WatchlistChangeHeader } from "../contracts/index.ts";

/** One watchlist change, exactly the header of `WatchlistChangeContract` (topic `vigil.watchlist-changes`). */
export type WatchlistChange = z.infer<typeof WatchlistChangeHeader>;

/**
 * Where the watchlist service announces each change it has made, after it is stored, so other processes (a match
 * service holding the watchlist in memory) can `invalidate()` their store at once instead of at their next poll.
 * Announcing is best kept cheap and may fail: every change is idempotent, so a caller can simply retry.
 */
export interface WatchlistChanges {
  announce(change: WatchlistChange): void | Promise<void>;
}

/** For a process with no one to tell: embedded stores see each other's changes by themselves. */
export const silentChanges: WatchlistChanges = { announce() {} };

/** Keeps what was announced; for tests and for a process that forwards changes itself. */
export class RecordedChanges implements WatchlistChanges {
  readonly changes: WatchlistChange[] = [];
  announce(change: WatchlistChange) {
    this.changes.push(change);
  }
}
