/**
 * Every kind of collection a deployment has, named `<prefix>_<kind>` or `<prefix>_<kind>__<model>`: what tells a
 * deployment's collections from another's whose prefix merely starts the same (`vigil` and `vigil_test`).
 */
export const COLLECTION_KINDS = [
  "watchlist",
  "exclusions",
  "sightings",
  "unknowns",
  "people",
  "watchlists",
  "alerts",
  "state",
] as const;
export type CollectionKind = (typeof COLLECTION_KINDS)[number];

/**
 * How a collection is laid out over a cluster (`store.qdrantCollections`): shards, copies of each, and copies a
 * write must reach. One of each suits one node.
 */
export interface QdrantLayout {
  shardNumber: number;
  replicationFactor: number;
  writeConsistencyFactor: number;
}

/**
 * The layout of every collection, and what differs for a kind of them: sightings grow to millions while the
 * watchlist stays small, so a site may give them more shards (or copies) than the rest.
 */
export type QdrantLayouts = QdrantLayout & {
  byKind?: Partial<Record<CollectionKind, Partial<QdrantLayout>>>;
};

export const ONE_NODE: QdrantLayout = { shardNumber: 1, replicationFactor: 1, writeConsistencyFactor: 1 };

/** The layout collections of `kind` get: the common one with the kind's own settings over it. */
export function layoutOfKind(layouts: QdrantLayouts, kind: string | undefined): QdrantLayout {
  const own = kind ? layouts.byKind?.[kind as CollectionKind] : undefined;
  return {
    shardNumber: own?.shardNumber ?? layouts.shardNumber,
    replicationFactor: own?.replicationFactor ?? layouts.replicationFactor,
    writeConsistencyFactor: own?.writeConsistencyFactor ?? layouts.writeConsistencyFactor,
  };
}

/** The kind of a collection of the deployment `prefix` (`<prefix>_<kind>[__<model>]`); undefined for another's. */
export function kindOfCollection(prefix: string, collection: string): CollectionKind | undefined {
  if (!collection.startsWith(`${prefix}_`)) return undefined;
  const kind = collection.slice(prefix.length + 1).split("__")[0];
  return (COLLECTION_KINDS as readonly string[]).includes(kind!) ? (kind as CollectionKind) : undefined;
}
