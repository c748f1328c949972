import type { QdrantClient } from "@qdrant/js-client-rest";
import { randomBytes } from "node:crypto";
import { centroidOf, joinsIdentity } from "../identities/clusterer.ts";
import {
  checkMerge,
  joinIdentity,
  mergeIdentities,
  sightingsOfUnknown,
  splitIdentity,
  startIdentity,
  unknownIdFor,
  withoutSightings,
  type Member,
} from "../identities/identity.ts";
import { cosine } from "../geometry/index.ts";
import {
  identityPosition,
  publicIdentity,
  type IdentityState,
  type IdentityStore,
  type SightingWithVector,
  type UnknownAssignment,
  type UnknownIdentity,
  type UnknownPatch,
  type UnknownQuery,
} from "./identity-store.ts";
import { InvalidInputError } from "./errors.ts";
import {
  checkLimit,
  decodeCursor,
  encodeCursor,
  newestFirst,
  type CursorPosition,
  type Page,
} from "./paging.ts";
import {
  pointId,
  type CollectionKind,
  type FilterCondition,
  type IndexKind,
  type Payload,
} from "./qdrant-store.ts";
import type { SightingStore } from "./sighting-store.ts";

/** What the identities use of the Qdrant store they live beside (qdrant-store.ts builds it). */
export interface QdrantAccess {
  client: QdrantClient;
  /** The collection of a kind (and model). */
  name(kind: CollectionKind, modelId?: string): string;
  ensure(collection: string, size: number, indexes: Record<string, IndexKind>): Promise<void>;
  /** The collections of a kind, one per model. */
  collections(kind: CollectionKind): Promise<string[]>;
  upsert(collection: string, points: { id: string; vector: number[]; payload: Payload }[]): Promise<void>;
  orderedPage(
    collection: string,
    must: FilterCondition[],
    key: string,
    limit: number,
    cursor: CursorPosition | undefined,
  ): Promise<{ items: Payload[]; more: boolean }>;
  /** The sightings the identities group: a split reads its sightings through them. */
  sightings: Pick<SightingStore, "getSighting" | "browse">;
}

/**
 * Sightings whose assignment an identity remembers. Qdrant has no transactions: the identity is written before
 * its sighting is labelled, and a crash in between leaves the sighting unlabelled; its replay finds the identity
 * (the nearest, since the sighting is in its centroid) already holding it, and only labels it.
 */
const RECENT_KEPT = 64;
const PURGE_BATCH = 500;

/** Attempts of a conditional write that found the identity changed since it was read, before giving up. */
const TRIES = 8;

const INDEXES = {
  id: "keyword",
  lastSeen: "integer",
  firstSeen: "integer",
  cameras: "keyword",
  rev: "keyword",
  mergingInto: "keyword",
} as const;

/** Each write gives the point a new revision: a conditional write applies only to the revision it read. */
const newRev = () => randomBytes(8).toString("hex");

/** The point only while it is as `read` (points written before revisions: still without one). */
const asRead = (read: Payload): FilterCondition[] => [
  read.rev == null ? { is_empty: { key: "rev" } } : { key: "rev", match: { value: String(read.rev) } },
];

/** Operator changes (`merge:<from>`, `split:<created>`) applied to an identity: a retry finds its own and stops. */
const APPLIED_KEPT = 64;

interface Carried {
  /** Sightings it counted lately (see RECENT_KEPT). */
  recent: string[];
  applied: string[];
}

/** The point's vector is the centroid (Qdrant keeps cosine vectors normalised); the sum's length rides along. */
function toPayload(s: IdentityState, carried: Carried): { vector: number[]; payload: Payload } {
  const norm = Math.hypot(...s.sum);
  return {
    vector: Array.from(centroidOf(s.sum)),
    payload: {
      id: s.id,
      name: s.name,
      modelId: s.modelId,
      firstSeen: s.firstSeen,
      lastSeen: s.lastSeen,
      count: s.count,
      cameras: s.cameras,
      bestIds: s.best.map((b) => b.id),
      bestRanks: s.best.map((b) => b.rank),
      sumNorm: norm,
      promotedTo: s.promotedTo,
      recent: [...new Set(carried.recent)].slice(-RECENT_KEPT),
      applied: [...new Set(carried.applied)].slice(-APPLIED_KEPT),
      rev: newRev(),
    },
  };
}

function toState(p: Payload, vector: number[] | undefined): IdentityState {
  const norm = Number(p.sumNorm ?? 1);
  const ids = (p.bestIds as string[] | undefined) ?? [];
  const ranks = (p.bestRanks as number[] | undefined) ?? [];
  return {
    id: String(p.id),
    name: p.name == null ? null : String(p.name),
    modelId: String(p.modelId),
    firstSeen: Number(p.firstSeen),
    lastSeen: Number(p.lastSeen),
    count: Number(p.count),
    cameras: ((p.cameras as string[] | undefined) ?? []).map(String),
    best: ids.map((id, i) => ({ id: String(id), rank: Number(ranks[i] ?? 0) })),
    sum: Float32Array.from(vector ?? [], (x) => x * norm),
    promotedTo: p.promotedTo == null ? null : String(p.promotedTo),
  };
}

const listOf = (p: Payload | null | undefined, key: string) =>
  ((p?.[key] as string[] | undefined) ?? []).map(String);
const recentOf = (p: Payload | null | undefined) => listOf(p, "recent");
const carriedOf = (p: Payload): Carried => ({ recent: recentOf(p), applied: listOf(p, "applied") });

/** The identity a stored sighting is labelled with (null: none yet); throws for a sighting not stored. */
export async function storedLabel(
  q: QdrantAccess,
  s: { id: string; modelId: string },
): Promise<string | null> {
  const [stored] = await q.client.retrieve(q.name("sightings", s.modelId), {
    ids: [pointId(s.id)],
    with_payload: { include: ["unknownId"] },
  });
  if (!stored) throw new Error(`sighting ${s.id} is not stored: store it before assigning it`);
  return stored.payload?.unknownId ? String(stored.payload.unknownId) : null;
}

/** Labels sightings of one model with an identity (null: none). */
export async function labelSightings(
  q: QdrantAccess,
  modelId: string,
  sightingIds: string[],
  unknownId: string | null,
) {
  if (sightingIds.length === 0) return;
  await q.client.setPayload(q.name("sightings", modelId), {
    wait: true,
    points: sightingIds.map(pointId),
    payload: { unknownId },
  });
}

/** Every sightings collection: points labelled with any of `ids` get `to`. */
export async function relabelSightings(q: QdrantAccess, ids: string[], to: string | null) {
  if (ids.length === 0) return;
  for (const col of await q.collections("sightings"))
    await q.client.setPayload(col, {
      wait: true,
      filter: { must: [{ key: "unknownId", match: { any: ids } }] },
      payload: { unknownId: to },
    });
}

/** Qdrant answers a write to a point that does not exist with 404. */
const notFound = (err: unknown) =>
  (err as { status?: number }).status === 404 || /Unexpected Response: 404\b/.test((err as Error).message);

/**
 * The Qdrant store's unknown identities: a collection per model whose points are centroids, so the nearest
 * identity is one vector query however many there are; payload indexes on time and cameras serve the listing.
 * Sightings carry `unknownId` in their payload (keyword-indexed) for an identity's sightings and timeline.
 *
 * Qdrant has no transactions. What stands in for them:
 * - Every write of a whole identity is conditional (`update_mode: update_only` with an `update_filter` on the
 *   revision it read, a fresh `rev` per write), then read back: it never recreates an identity merged, deleted or
 *   purged since it was read, and never overwrites a change made since (another replica's join, an operator's
 *   rename); the writer reads again and retries. A rename or a promotion sets only its fields (`set_payload`, which
 *   Qdrant refuses for a point that is gone) and moves the revision, so a join computed before it retries too.
 * - A merge first marks `from` as merging (a conditional write: from then on no join lands on it, and the nearest
 *   query skips it), folds it into `into` recording `merge:<from>` in `into`'s `applied` list, moves the labels, and
 *   deletes `from`: a retry after a crash at any step finds what was done and completes the rest, counting `from`
 *   once. A split writes the new identity, labels only sightings still the source's (a filtered `set_payload`),
 *   then shrinks the source by a conditional write marked `split:<created>`.
 * - A deletion clears the labels, then deletes the point (as retention does): a crash in between leaves an
 *   identity that a retry deletes, never labels of nothing.
 *
 * What remains: a sighting's label is written after its identity (the match stage labels after the conditional
 * join). A join that landed on an identity just before a merge marked it, or a deletion removed it, and whose
 * label is written after that merge or deletion moved or cleared the labels, keeps the old identity's id until
 * the sighting expires: the identity's counts are right (the merge folded the join in), only that one sighting is
 * missing from the merged identity's sightings. The window is the match stage's time between its two writes.
 * Likewise a sighting another change moves between a split's read and its labelling stays where it went, yet is
 * counted in the split-off identity (and left out of the source's count).
 */
export class QdrantIdentities implements IdentityStore {
  constructor(private readonly q: QdrantAccess) {}

  private async collection(modelId: string, dim: number) {
    const col = this.q.name("unknowns", modelId);
    await this.q.ensure(col, dim, { ...INDEXES });
    return col;
  }

  /** The identity's point, wherever its model's collection is. */
  private async find(id: string) {
    for (const col of await this.q.collections("unknowns")) {
      const [row] = await this.q.client.retrieve(col, {
        ids: [pointId(id)],
        with_payload: true,
        with_vector: true,
      });
      if (row?.payload) return { col, payload: row.payload, vector: row.vector as number[] };
    }
    return undefined;
  }

  /**
   * Replaces the identity's point with `next` only if it still exists as `read`; true when the write is there
   * (`landed` checks the point read back, since a later writer may already have moved its revision on).
   */
  private async replaceIfUnchanged(
    col: string,
    read: Payload,
    next: IdentityState,
    carried: Carried,
    landed: (now: Payload) => boolean,
  ): Promise<boolean> {
    await this.q.client.upsert(col, {
      wait: true,
      points: [{ id: pointId(next.id), ...toPayload(next, carried) }],
      update_mode: "update_only",
      update_filter: { must: asRead(read) },
    });
    const [now] = await this.q.client.retrieve(col, { ids: [pointId(next.id)], with_payload: true });
    return !!now?.payload && landed(now.payload);
  }

  async assignUnknown(s: SightingWithVector, threshold: number): Promise<UnknownAssignment> {
    const labelled = await storedLabel(this.q, s);
    if (labelled) {
      const id = labelled;
      const current = await this.find(id);
      const similarity = current ? cosine(s.vector, Float32Array.from(current.vector)) : 1;
      return { id, created: false, similarity, replayed: true };
    }
    const col = await this.collection(s.modelId, s.vector.length);
    let result: UnknownAssignment | undefined;
    for (let attempt = 0; attempt < TRIES && !result; attempt++) {
      const { points } = await this.q.client.query(col, {
        query: Array.from(s.vector),
        // An identity being merged away takes no more sightings.
        filter: { must: [{ is_empty: { key: "mergingInto" } }] },
        limit: 1,
        with_payload: true,
        with_vector: true,
      });
      const nearest = points[0];
      if (!nearest?.payload || !joinsIdentity(nearest.score, threshold)) break;
      const carried = carriedOf(nearest.payload);
      const state = toState(nearest.payload, nearest.vector as number[]);
      // Already counted by a run that crashed before labelling the sighting: label it only.
      if (carried.recent.includes(s.id))
        result = { id: state.id, created: false, similarity: nearest.score, replayed: true };
      else if (
        await this.replaceIfUnchanged(
          col,
          nearest.payload,
          joinIdentity(state, s),
          { ...carried, recent: [...carried.recent, s.id] },
          (now) => recentOf(now).includes(s.id),
        )
      )
        result = { id: state.id, created: false, similarity: nearest.score, replayed: false };
      // Else it changed, was merged away or deleted since the query: look again.
    }
    if (!result) {
      const next = startIdentity(unknownIdFor(s.id), s);
      // insert_only: an identity this sighting founded before a crash keeps what joined it since.
      await this.q.client.upsert(col, {
        wait: true,
        points: [{ id: pointId(next.id), ...toPayload(next, { recent: [s.id], applied: [] }) }],
        update_mode: "insert_only",
      });
      result = { id: next.id, created: true, similarity: 1, replayed: false };
    }
    await labelSightings(this.q, s.modelId, [s.id], result.id);
    return result;
  }

  async getUnknown(id: string) {
    const found = await this.find(id);
    return found ? toState(found.payload, found.vector) : undefined;
  }

  async listUnknowns(q: UnknownQuery): Promise<Page<UnknownIdentity>> {
    const limit = checkLimit(q.limit);
    const cursor = q.cursor ? decodeCursor(q.cursor) : undefined;
    const must: FilterCondition[] = [];
    if (q.cameras && q.cameras.length > 0) must.push({ key: "cameras", match: { any: q.cameras } });
    if (q.seenSince !== undefined) must.push({ key: "lastSeen", range: { gte: q.seenSince } });
    if (q.seenUntil !== undefined) must.push({ key: "firstSeen", range: { lte: q.seenUntil } });
    // One collection per model: a page from each, merged (as sightings are browsed).
    const pages = await Promise.all(
      (await this.q.collections("unknowns")).map((col) =>
        this.q.orderedPage(col, must, "lastSeen", limit, cursor),
      ),
    );
    const merged = pages
      .flatMap((p) => p.items)
      .map((p) => publicIdentity(toState(p, [])))
      .sort((a, b) => newestFirst(identityPosition(a), identityPosition(b)));
    const items = merged.slice(0, limit);
    const more = merged.length > limit || pages.some((p) => p.more);
    const last = items.at(-1);
    return { items, nextCursor: more && last ? encodeCursor(identityPosition(last)) : null };
  }

  async patchUnknown(id: string, patch: UnknownPatch) {
    const found = await this.find(id);
    if (!found) return undefined;
    const fields = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
    if (Object.keys(fields).length > 0) {
      try {
        // Only these fields, on this one point; a new revision makes a join computed before it retry.
        await this.q.client.setPayload(found.col, {
          wait: true,
          points: [pointId(id)],
          payload: { ...fields, rev: newRev() },
        });
      } catch (err) {
        if (notFound(err)) return undefined;
        throw err;
      }
    }
    return this.getUnknown(id);
  }

  async commitMerge(intoId: string, fromId: string) {
    const key = `merge:${fromId}`;
    for (let attempt = 0; attempt < TRIES; attempt++) {
      const into = await this.find(intoId);
      let from = await this.find(fromId);
      if (into && from && intoId !== fromId && listOf(into.payload, "applied").includes(key)) {
        // Folded already (a retry after a crash): complete the move. (With `from` gone it was all done: not found.)
        await relabelSightings(this.q, [fromId], intoId);
        await this.q.client.delete(from.col, { wait: true, points: [pointId(fromId)] });
        return toState(into.payload, into.vector);
      }
      checkMerge(
        intoId,
        fromId,
        into && toState(into.payload, into.vector),
        from && toState(from.payload, from.vector),
      );
      const merging = from!.payload.mergingInto;
      if (merging != null && merging !== intoId)
        throw new InvalidInputError(`${fromId} is being merged into ${String(merging)}`);
      if (merging == null) {
        // Mark `from` first: no join lands on it after this, so what is folded below is all of it.
        await this.q.client.setPayload(from!.col, {
          wait: true,
          filter: { must: [{ has_id: [pointId(fromId)] }, ...asRead(from!.payload)] },
          payload: { mergingInto: intoId, rev: newRev() },
        });
        from = await this.find(fromId);
        if (from?.payload.mergingInto !== intoId) continue;
      }
      const merged = mergeIdentities(
        toState(into!.payload, into!.vector),
        toState(from!.payload, from!.vector),
      );
      const carried = carriedOf(into!.payload);
      const folded = await this.replaceIfUnchanged(
        into!.col,
        into!.payload,
        merged,
        { recent: [...carried.recent, ...recentOf(from!.payload)], applied: [...carried.applied, key] },
        (now) => listOf(now, "applied").includes(key),
      );
      if (!folded) continue;
      // The labels, then the old record: a retry after a crash finds `merge:<from>` applied and completes these.
      await relabelSightings(this.q, [fromId], intoId);
      await this.q.client.delete(from!.col, { wait: true, points: [pointId(fromId)] });
      return (await this.getUnknown(intoId)) ?? merged;
    }
    throw new Error(`${intoId} or ${fromId} kept changing while merging them: try again`);
  }

  async commitSplit(sourceId: string, createdId: string, sightingIds: string[]) {
    const key = `split:${createdId}`;
    const source = await this.find(sourceId);
    // Read now, just before relabelling: each must still be the source's.
    const found = new Map<string, Member & { unknownId?: string | null }>();
    for (const id of sightingIds) {
      const s = await this.q.sightings.getSighting(id);
      if (s) found.set(id, s);
    }
    const remaining = await sightingsOfUnknown(this.q.sightings, sourceId);
    const split = splitIdentity(
      source && toState(source.payload, source.vector),
      sourceId,
      createdId,
      sightingIds,
      found,
      remaining,
    );
    const modelId = split.created.modelId;
    const col = await this.collection(modelId, split.created.sum.length);
    // The new identity first (insert_only: a retry keeps it as written), then the labels of sightings still the
    // source's only (a merge may have moved one since), then the source, shrunk.
    await this.q.client.upsert(col, {
      wait: true,
      points: [{ id: pointId(createdId), ...toPayload(split.created, { recent: sightingIds, applied: [] }) }],
      update_mode: "insert_only",
    });
    await this.q.client.setPayload(this.q.name("sightings", modelId), {
      wait: true,
      filter: {
        must: [{ has_id: sightingIds.map(pointId) }, { key: "unknownId", match: { value: sourceId } }],
      },
      payload: { unknownId: createdId },
    });
    const moved = [...found.values()];
    for (let attempt = 0; attempt < TRIES; attempt++) {
      const now = attempt === 0 ? source : await this.find(sourceId);
      // Gone (deleted, merged away) or shrunk already: nothing left to shrink.
      if (!now || listOf(now.payload, "applied").includes(key)) break;
      const carried = carriedOf(now.payload);
      const shrunk = withoutSightings(toState(now.payload, now.vector), moved, remaining);
      if (
        await this.replaceIfUnchanged(
          now.col,
          now.payload,
          shrunk,
          { recent: carried.recent.filter((id) => !found.has(id)), applied: [...carried.applied, key] },
          (p) => listOf(p, "applied").includes(key),
        )
      )
        return { source: shrunk, created: split.created };
    }
    return { source: (await this.getUnknown(sourceId)) ?? split.source, created: split.created };
  }

  async deleteUnknown(id: string) {
    const found = await this.find(id);
    if (!found) return false;
    // Labels first (as a purge): a crash in between leaves an identity to delete again, never labels of nothing.
    await relabelSightings(this.q, [id], null);
    await this.q.client.delete(found.col, { wait: true, points: [pointId(id)] });
    return true;
  }

  async purgeUnknownsBefore(ts: number) {
    let removed = 0;
    const filter = { must: [{ key: "lastSeen", range: { lt: ts } }] };
    for (const col of await this.q.collections("unknowns")) {
      for (;;) {
        const { points } = await this.q.client.scroll(col, {
          filter,
          limit: PURGE_BATCH,
          with_payload: { include: ["id"] },
          with_vector: false,
        });
        if (points.length === 0) break;
        // Labels first: a purge cut short leaves identities to delete next time, never labels of nothing.
        await relabelSightings(
          this.q,
          points.map((p) => String(p.payload!.id)),
          null,
        );
        await this.q.client.delete(col, { wait: true, points: points.map((p) => p.id) });
        removed += points.length;
      }
    }
    return removed;
  }
}
