import { centroidOf, joinsIdentity } from "../identities/clusterer.ts";
import { joinIdentity, startIdentity, unknownIdFor } from "../identities/identity.ts";
import { cosine } from "../geometry/index.ts";
import {
  identityPosition,
  publicIdentity,
  type IdentityState,
  type IdentityStore,
  type SightingWithVector,
  type UnknownAssignment,
  type UnknownIdentity,
  type UnknownQuery,
} from "./identity-store.ts";
import { checkLimit, decodeCursor, encodeCursor, newestFirst, type Page } from "./paging.ts";
import { pointId, type FilterCondition, type Payload, type QdrantStore } from "./qdrant-store.ts";

/**
 * Sightings whose assignment an identity remembers. Qdrant has no transactions: the identity is written before
 * its sighting is labelled, and a crash in between leaves the sighting unlabelled; its replay finds the identity
 * (the nearest, since the sighting is in its centroid) already holding it, and only labels it.
 */
const RECENT_KEPT = 64;
const PURGE_BATCH = 500;

const INDEXES = { id: "keyword", lastSeen: "integer", firstSeen: "integer", cameras: "keyword" } as const;

/** The point's vector is the centroid (Qdrant keeps cosine vectors normalised); the sum's length rides along. */
function toPayload(s: IdentityState, recent: string[]): { vector: number[]; payload: Payload } {
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
      recent: recent.slice(-RECENT_KEPT),
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

const recentOf = (p: Payload | null | undefined) => ((p?.recent as string[] | undefined) ?? []).map(String);

/**
 * The Qdrant store's unknown identities: a collection per model whose points are centroids, so the nearest
 * identity is one vector query however many there are; payload indexes on time and cameras serve the listing.
 * Sightings carry `unknownId` in their payload (keyword-indexed) for an identity's sightings and timeline.
 *
 * Without transactions, a merge or split is a few writes in an order that a retry completes; two match replicas
 * assigning to the same identity in the same instant may lose one of the two centroid updates (the sightings are
 * still labelled): a small drift, never a wrong label.
 */
export class QdrantIdentities implements IdentityStore {
  constructor(private readonly q: QdrantStore) {}

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

  private async label(modelId: string, sightingIds: string[], unknownId: string | null) {
    if (sightingIds.length === 0) return;
    const col = this.q.name("sightings", modelId);
    await this.q.client.setPayload(col, {
      wait: true,
      points: sightingIds.map(pointId),
      payload: { unknownId },
    });
  }

  /** Every sightings collection: points labelled with any of `ids` get `to`. */
  private async relabel(ids: string[], to: string | null) {
    if (ids.length === 0) return;
    for (const col of await this.q.collections("sightings"))
      await this.q.client.setPayload(col, {
        wait: true,
        filter: { must: [{ key: "unknownId", match: { any: ids } }] },
        payload: { unknownId: to },
      });
  }

  async assignUnknown(s: SightingWithVector, threshold: number): Promise<UnknownAssignment> {
    const [stored] = await this.q.client.retrieve(this.q.name("sightings", s.modelId), {
      ids: [pointId(s.id)],
      with_payload: { include: ["unknownId"] },
    });
    if (!stored) throw new Error(`sighting ${s.id} is not stored: store it before assigning it`);
    if (stored.payload?.unknownId) {
      const id = String(stored.payload.unknownId);
      const current = await this.find(id);
      const similarity = current ? cosine(s.vector, Float32Array.from(current.vector)) : 1;
      return { id, created: false, similarity, replayed: true };
    }
    const col = await this.collection(s.modelId, s.vector.length);
    const { points } = await this.q.client.query(col, {
      query: Array.from(s.vector),
      limit: 1,
      with_payload: true,
      with_vector: true,
    });
    const nearest = points[0];
    let result: UnknownAssignment;
    if (nearest?.payload && joinsIdentity(nearest.score, threshold)) {
      const recent = recentOf(nearest.payload);
      const state = toState(nearest.payload, nearest.vector as number[]);
      // Already counted by a run that crashed before labelling the sighting: label it only.
      const replayed = recent.includes(s.id);
      if (!replayed) {
        const next = joinIdentity(state, s);
        await this.q.upsert(col, [{ id: pointId(next.id), ...toPayload(next, [...recent, s.id]) }]);
      }
      result = { id: state.id, created: false, similarity: nearest.score, replayed };
    } else {
      const next = startIdentity(unknownIdFor(s.id), s);
      await this.q.upsert(col, [{ id: pointId(next.id), ...toPayload(next, [s.id]) }]);
      result = { id: next.id, created: true, similarity: 1, replayed: false };
    }
    await this.label(s.modelId, [s.id], result.id);
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

  private async write(state: IdentityState, extraRecent: string[] = []) {
    const before = await this.find(state.id);
    const col = await this.collection(state.modelId, state.sum.length);
    await this.q.upsert(col, [
      { id: pointId(state.id), ...toPayload(state, [...recentOf(before?.payload), ...extraRecent]) },
    ]);
  }

  async putUnknown(state: IdentityState) {
    await this.write(state);
  }

  async commitMerge(into: IdentityState, fromId: string) {
    const from = await this.find(fromId);
    // The merged record first, then the labels, then the old record: a retry after a crash finds `from` still
    // there and its sightings partly moved, and the move completes.
    await this.write(into, recentOf(from?.payload));
    await this.relabel([fromId], into.id);
    if (from) await this.q.client.delete(from.col, { wait: true, points: [pointId(fromId)] });
  }

  async commitSplit(source: IdentityState, created: IdentityState, sightingIds: string[]) {
    await this.write(created, sightingIds);
    await this.label(created.modelId, sightingIds, created.id);
    await this.write(source);
  }

  async deleteUnknown(id: string) {
    const found = await this.find(id);
    if (!found) return false;
    await this.q.client.delete(found.col, { wait: true, points: [pointId(id)] });
    await this.relabel([id], null);
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
        await this.relabel(
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
