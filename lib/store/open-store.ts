import { storePath, type Config } from "../config/index.ts";
import type { AlertStore } from "./alert-store.ts";
import { QdrantStore } from "./qdrant-store.ts";
import type { SightingStore } from "./sighting-store.ts";
import { SqliteStore } from "./sqlite-store.ts";
import type { StateStore } from "./state-store.ts";
import type { WatchlistStore } from "./watchlist-store.ts";

export type Store = WatchlistStore & SightingStore & AlertStore & StateStore & { close(): void };

/** The configured store: the embedded SQLite file by default, Qdrant for the scale-out deployment. */
export function openStore(config: Config, fileOverride?: string): Store {
  if (config.store.kind === "qdrant") {
    if (!config.store.qdrantUrl) throw new Error("store.kind is qdrant but store.qdrantUrl is not set");
    return new QdrantStore(config.store.qdrantUrl, config.store.qdrantPrefix, config.store.qdrantApiKey);
  }
  return new SqliteStore(fileOverride ?? storePath(config), { refreshMs: config.store.refreshMs });
}
