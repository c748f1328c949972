import { createHash, randomBytes } from "node:crypto";
import type { IdentityState, SightingWithVector } from "../store/identity-store.ts";
import { InvalidInputError, NotFoundError } from "../store/errors.ts";
import type { SightingRecord, SightingStore } from "../store/sighting-store.ts";
import { qualityRank } from "../vision/pixels/quality.ts";
import { addToSum } from "./clusterer.ts";

/**
 * How an identity record changes as sightings join, identities merge or split: plain functions over
 * `IdentityState`, so both stores (and the service) change identities the same way and only persist them.
 */

/** Photos kept per identity: enough to enrol from after a promotion, few enough to show at a glance. */
export const BEST_KEPT = 5;

const ID_HEX = 12;

/** What of a sighting an identity is made of: enough for a store to compute it from its own rows. */
export type Member = Pick<
  SightingWithVector,
  "id" | "cameraId" | "startTs" | "endTs" | "modelId" | "quality" | "vector"
>;
/** What of a sighting an identity's span, cameras and photos are recomputed from (a split). */
export type MemberRecord = Pick<SightingRecord, "id" | "cameraId" | "startTs" | "endTs" | "quality">;

/**
 * The id of the identity a sighting founds, from the sighting's id: a replayed sighting founds the same one, so
 * a crash between creating an identity and labelling its sighting cannot leave a second.
 */
export const unknownIdFor = (sightingId: string) =>
  `unknown-${createHash("sha256").update(sightingId).digest("hex").slice(0, ID_HEX)}`;

/** A fresh id for an identity split off by an operator (not a replayable event). */
export const newUnknownId = () => `unknown-${randomBytes(ID_HEX / 2).toString("hex")}`;

export const isUnknownId = (id: string) => /^unknown-[0-9a-f]{12}$/.test(id);

/** The few best of `entries` by rank (ties: by id, so every store keeps the same). */
export function bestOf(entries: { id: string; rank: number }[]): { id: string; rank: number }[] {
  const unique = new Map<string, number>();
  for (const e of entries) unique.set(e.id, e.rank);
  return [...unique]
    .map(([id, rank]) => ({ id, rank }))
    .sort((a, b) => b.rank - a.rank || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .slice(0, BEST_KEPT);
}

const sortedUnion = (a: string[], b: string[]) => [...new Set([...a, ...b])].sort();

/** An identity of one sighting. */
export function startIdentity(id: string, s: Member): IdentityState {
  return {
    id,
    name: null,
    modelId: s.modelId,
    firstSeen: s.startTs,
    lastSeen: s.endTs,
    count: 1,
    cameras: [s.cameraId],
    sum: Float32Array.from(s.vector),
    best: [{ id: s.id, rank: qualityRank(s.quality) }],
    promotedTo: null,
  };
}

/** The identity after `s` joined it (a new object; the centroid moves with the sum). */
export function joinIdentity(state: IdentityState, s: Member): IdentityState {
  return {
    ...state,
    firstSeen: Math.min(state.firstSeen, s.startTs),
    lastSeen: Math.max(state.lastSeen, s.endTs),
    count: state.count + 1,
    cameras: sortedUnion(state.cameras, [s.cameraId]),
    sum: addToSum(Float32Array.from(state.sum), s.vector),
    best: bestOf([...state.best, { id: s.id, rank: qualityRank(s.quality) }]),
  };
}

/** `from` folded into `into`: counts and sums add up, spans and cameras join, the best photos of both compete. */
export function mergeIdentities(into: IdentityState, from: IdentityState): IdentityState {
  return {
    ...into,
    name: into.name ?? from.name,
    promotedTo: into.promotedTo ?? from.promotedTo,
    firstSeen: Math.min(into.firstSeen, from.firstSeen),
    lastSeen: Math.max(into.lastSeen, from.lastSeen),
    count: into.count + from.count,
    cameras: sortedUnion(into.cameras, from.cameras),
    sum: addToSum(Float32Array.from(into.sum), from.sum),
    best: bestOf([...into.best, ...from.best]),
  };
}

/**
 * The checks of a merge, on both identities as a store has them now (each store calls it where it reads them,
 * inside its transaction for SQLite).
 */
export function checkMerge(intoId: string, fromId: string, into?: IdentityState, from?: IdentityState) {
  if (intoId === fromId) throw new InvalidInputError("an identity cannot be merged into itself");
  if (!into) throw new NotFoundError(`no unknown identity ${intoId}`);
  if (!from) throw new NotFoundError(`no unknown identity ${fromId}`);
  if (into.modelId !== from.modelId)
    throw new InvalidInputError(
      `${fromId} was made with model ${from.modelId} and ${intoId} with ${into.modelId}: their faces cannot be compared`,
    );
  return { into, from };
}

/**
 * A split as a store computes it from what it has now: each of `ids` must still be `source`'s (`found` by id, with
 * its current label), and not all of them; `remaining` are the source's stored sightings.
 */
export function splitIdentity(
  source: IdentityState | undefined,
  sourceId: string,
  createdId: string,
  ids: string[],
  found: Map<string, Member & { unknownId?: string | null }>,
  remaining: MemberRecord[],
): { source: IdentityState; created: IdentityState } {
  if (ids.length === 0) throw new InvalidInputError("name at least one sighting to split off");
  if (!source) throw new NotFoundError(`no unknown identity ${sourceId}`);
  const moved = ids.map((sid) => {
    const s = found.get(sid);
    if (!s) throw new NotFoundError(`no sighting ${sid}`);
    if (s.unknownId !== sourceId) throw new InvalidInputError(`sighting ${sid} is not one of ${sourceId}'s`);
    return s;
  });
  if (moved.length >= source.count)
    throw new InvalidInputError(`those are all of ${sourceId}'s sightings: there is nothing to split off`);
  return { source: withoutSightings(source, moved, remaining), created: identityOf(createdId, moved) };
}

/** A new identity of the given sightings (a split). */
export function identityOf(id: string, sightings: Member[]): IdentityState {
  const [first, ...rest] = sightings;
  if (!first) throw new Error("an identity needs at least one sighting");
  return rest.reduce(joinIdentity, startIdentity(id, first));
}

/**
 * `state` without the `moved` sightings: their vectors leave the sum and the count. Span, cameras and photos are
 * recomputed from `remaining` (the identity's sightings still stored: retention may have removed older ones, so
 * they describe what is left to show).
 */
export function withoutSightings(
  state: IdentityState,
  moved: Pick<Member, "id" | "vector">[],
  remaining: MemberRecord[],
): IdentityState {
  const sum = Float32Array.from(state.sum);
  for (const s of moved) addToSum(sum, s.vector, -1);
  const gone = new Set(moved.map((s) => s.id));
  const left = remaining.filter((s) => !gone.has(s.id));
  return {
    ...state,
    count: Math.max(left.length, state.count - moved.length),
    sum,
    ...(left.length > 0
      ? {
          firstSeen: Math.min(...left.map((s) => s.startTs)),
          lastSeen: Math.max(...left.map((s) => s.endTs)),
          cameras: [...new Set(left.map((s) => s.cameraId))].sort(),
          best: bestOf(left.map((s) => ({ id: s.id, rank: qualityRank(s.quality) }))),
        }
      : { best: state.best.filter((b) => !gone.has(b.id)) }),
  };
}

/** Pages read to gather all of an identity's sightings (a split, a timeline): far beyond any real stranger. */
const ALL_LIMIT = 1000;
const ALL_MAX = 10_000;

/** Every stored sighting of an unknown identity (newest first): for a split, and for its timeline. */
export async function sightingsOfUnknown(
  store: Pick<SightingStore, "browse">,
  id: string,
  range: { since?: number; until?: number } = {},
): Promise<SightingRecord[]> {
  const out: SightingRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.browse({ ...range, unknownId: id, limit: ALL_LIMIT, cursor });
    out.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor && out.length < ALL_MAX);
  return out;
}
