import type { Bus } from "../bus/index.ts";
import { Topics, WatchlistChangeContract } from "../contracts/index.ts";
import type { WatchlistChanges } from "./changes.ts";

/** Announces watchlist changes on `vigil.watchlist-changes`, where every match service hears of them. */
export function busChanges(bus: Bus): WatchlistChanges {
  return {
    announce: (change) =>
      bus.publish(Topics.watchlistChanges, [
        { key: change.watchlistId, value: WatchlistChangeContract.encode(change) },
      ]),
  };
}
