import type { Page, PageRequest } from "./paging.ts";
import type { SightingRecord } from "./sighting-store.ts";

/**
 * A stranger: sightings that matched nobody on the watchlist, grouped online by face (lib/identities/clusterer.ts
 * holds the rule). What operators see, name, merge, split, promote and delete.
 */
export interface UnknownIdentity {
  /** `unknown-<12 hex>`: stable for the identity's life, and derived from its first sighting (replays agree). */
  id: string;
  /** An operator's label; null until named. */
  name: string | null;
  /** Vectors of different models are never compared: an identity belongs to one model. */
  modelId: string;
  /** Start of its earliest sighting and end of its latest, ms since the epoch (as sightings' times). */
  firstSeen: number;
  lastSeen: number;
  /** Sightings (tracks) assigned to it. */
  count: number;
  cameras: string[];
  /** Its highest-quality sightings, best first: their crops (/v1/sightings/:id/crop) are its photos. */
  bestSightings: string[];
  /** The watchlist person it was promoted to, once it was. */
  promotedTo: string | null;
}

/** An identity with what the stores keep to go on assigning to it. */
export interface IdentityState extends Omit<UnknownIdentity, "bestSightings"> {
  /** Sum of the member vectors (lib/identities/clusterer.ts): its direction is the centroid. */
  sum: Float32Array;
  /** The best sightings with their quality rank (qualityRank), best first. */
  best: { id: string; rank: number }[];
}

export interface UnknownAssignment {
  id: string;
  created: boolean;
  /** To the identity's centroid before the sighting joined; 1 for a new identity. */
  similarity: number;
  /** The sighting was assigned before (a replay after a crash): nothing was counted again. */
  replayed: boolean;
}

export interface UnknownQuery extends PageRequest {
  /** Identities seen on any of these cameras. */
  cameras?: string[];
  /** Identities whose span [firstSeen, lastSeen] reaches into [seenSince, seenUntil]. */
  seenSince?: number;
  seenUntil?: number;
}

/** The fields an operator sets on an identity; those absent are left as stored. */
export interface UnknownPatch {
  name?: string | null;
  promotedTo?: string | null;
}

/** A stored sighting with the vector its track was matched on: what assignment and splitting need. */
export type SightingWithVector = SightingRecord & { vector: Float32Array };

/**
 * Unknown identities, kept beside the sightings they group: the embedded store (SQLite tables, nearest centroid
 * by an exact scan in memory) and the Qdrant store (a centroid collection per model, nearest centroid by vector
 * search) implement it. Every sighting of an identity carries its id (`SightingRecord.unknownId`).
 */
export interface IdentityStore {
  /**
   * Assigns a stored sighting that matched nobody to the nearest identity of its model whose centroid is at least
   * `threshold` similar, else to a new one. Exactly once per sighting: a sighting already assigned (the match
   * stage replaying a batch after a crash) keeps its identity and counts nothing again.
   */
  assignUnknown(sighting: SightingWithVector, threshold: number): Promise<UnknownAssignment>;
  getUnknown(id: string): Promise<IdentityState | undefined>;
  /** Newest `lastSeen` first, keyset-paged like sightings. */
  listUnknowns(query: UnknownQuery): Promise<Page<UnknownIdentity>>;
  /**
   * Sets only the given fields (a rename, a promotion) of the identity as stored now, never the whole record: a
   * sighting assigned since the caller read it keeps counting. Undefined when there is no such identity (a patch
   * never recreates one merged, deleted or purged meanwhile).
   */
  patchUnknown(id: string, patch: UnknownPatch): Promise<IdentityState | undefined>;
  /**
   * Folds `fromId` into `intoId` as both are stored now (lib/identities/identity.ts mergeIdentities), points
   * `fromId`'s sightings at it and removes `fromId`; returns the merged identity. NotFoundError when either is gone,
   * InvalidInputError when they are one or of different models. Safe to retry after a crash part way.
   */
  commitMerge(intoId: string, fromId: string): Promise<IdentityState>;
  /**
   * Moves `sightingIds` (each still `sourceId`'s) to a new identity `createdId` made of them, and shrinks the source
   * by them (withoutSightings) as stored now. NotFoundError for a missing identity or sighting, InvalidInputError for
   * a sighting not the source's, or for all of them.
   */
  commitSplit(
    sourceId: string,
    createdId: string,
    sightingIds: string[],
  ): Promise<{ source: IdentityState; created: IdentityState }>;
  /** Removes the identity; its sightings stay, unlabelled. */
  deleteUnknown(id: string): Promise<boolean>;
  /** Deletes identities last seen before `ts`, unlabelling their sightings still stored; returns how many. */
  purgeUnknownsBefore(ts: number): Promise<number>;
}

/** `lastSeen` page position, shared by the stores' keyset paging. */
export const identityPosition = (i: { lastSeen: number; id: string }) => ({ ts: i.lastSeen, id: i.id });

export const publicIdentity = ({ sum: _sum, best, ...rest }: IdentityState): UnknownIdentity => ({
  ...rest,
  bestSightings: best.map((b) => b.id),
});
