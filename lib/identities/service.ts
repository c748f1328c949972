import type { IdentityStore, UnknownIdentity, UnknownQuery } from "../store/identity-store.ts";
import { publicIdentity } from "../store/identity-store.ts";
import { InvalidInputError, NotFoundError } from "../store/errors.ts";
import type { Page, PageRequest } from "../store/paging.ts";
import type { SightingRecord, SightingStore } from "../store/sighting-store.ts";
import type { WatchlistService } from "../watchlist/service.ts";
import { newUnknownId, sightingsOfUnknown } from "./identity.ts";

export interface UnknownServiceDeps {
  store: IdentityStore;
  /** The sightings the identities group (the same store's). */
  sightings: Pick<SightingStore, "getSighting" | "browse" | "crop">;
  /** Promotion enrols through it: the same quality gate, ids and announcements as any enrolment. */
  watchlist: WatchlistService;
}

export interface PromoteRequest {
  /** Default: the identity's id, so its own timeline and the person's are one. */
  personId?: string;
  /** Default: the identity's name, else the person id. */
  name?: string;
  /** Default: the person's current watchlist, or `default`. */
  watchlistId?: string;
}

export interface PromoteResult {
  personId: string;
  /** Sightings whose crops were enrolled as the person's photos. */
  enrolled: string[];
  /** Sightings whose crops were refused, each with the reason (the enrolment quality gate's, or a missing crop). */
  rejected: { sightingId: string; reason: string }[];
}

const NAME = /^(?!\s)[^\p{Cc}]{1,200}(?<!\s)$/u;

/** Every stored sighting of an unknown identity (newest first); kept here for the callers that import it here. */
export { sightingsOfUnknown };

/**
 * Unknown identities' use cases — list, look at, name, promote to the watchlist, merge, split, delete — for the
 * CLI and the HTTP API alike. Identities are made by the match stage (IdentityStore.assignUnknown); operators
 * correct them here.
 *
 * Deleting an identity keeps its sightings, unlabelled: they are history, kept or purged by the sightings'
 * retention like any other, and still found by a search by photo. Only the grouping is forgotten.
 */
export class UnknownService {
  private readonly store: IdentityStore;
  private readonly sightingStore: UnknownServiceDeps["sightings"];
  private readonly watchlist: WatchlistService;

  constructor(deps: UnknownServiceDeps) {
    this.store = deps.store;
    this.sightingStore = deps.sightings;
    this.watchlist = deps.watchlist;
  }

  private async require(id: string) {
    const found = await this.store.getUnknown(id);
    if (!found) throw new NotFoundError(`no unknown identity ${id}`);
    return found;
  }

  /** Newest `lastSeen` first, by camera and by when they were seen. */
  async list(query: UnknownQuery): Promise<Page<UnknownIdentity>> {
    const { seenSince, seenUntil } = query;
    for (const [name, v] of [
      ["seenSince", seenSince],
      ["seenUntil", seenUntil],
    ] as const)
      if (v !== undefined && !Number.isFinite(v))
        throw new InvalidInputError(`${name} must be a time, got ${v}`);
    if (seenSince !== undefined && seenUntil !== undefined && seenSince > seenUntil)
      throw new InvalidInputError("seenSince is after seenUntil");
    return this.store.listUnknowns(query);
  }

  async get(id: string): Promise<UnknownIdentity> {
    return publicIdentity(await this.require(id));
  }

  /** The identity's sightings, newest first. */
  async sightings(id: string, page: PageRequest): Promise<Page<SightingRecord>> {
    await this.require(id);
    return this.sightingStore.browse({ ...page, unknownId: id });
  }

  /** Every sighting of the identity (newest first), within an optional time range. */
  allSightings(id: string, range: { since?: number; until?: number } = {}): Promise<SightingRecord[]> {
    return sightingsOfUnknown(this.sightingStore, id, range);
  }

  /** A label for operators (null clears it). */
  async name(id: string, name: string | null): Promise<UnknownIdentity> {
    if (name !== null && !NAME.test(name))
      throw new InvalidInputError("a name is 1–200 printable characters, without leading or trailing spaces");
    // Only the name: a sighting assigned meanwhile keeps counting.
    const named = await this.store.patchUnknown(id, { name });
    if (!named) throw new NotFoundError(`no unknown identity ${id}`);
    return publicIdentity(named);
  }

  /**
   * Makes the stranger a watchlist person: the identity's best crops are enrolled through the normal enrolment
   * (one face, quality gate), each refusal reported; the identity remembers whom it became. From then on that
   * person alerts like anyone enrolled. Nothing is stored for a new person if no crop was accepted.
   */
  async promote(id: string, request: PromoteRequest = {}): Promise<PromoteResult> {
    const state = await this.require(id);
    const personId = request.personId ?? state.id;
    const rejected: PromoteResult["rejected"] = [];
    const photos: { name: string; bytes: Uint8Array }[] = [];
    const sightingOf = new Map<string, string>();
    for (const b of state.best) {
      const crop = await this.sightingStore.crop(b.id);
      if (!crop) {
        rejected.push({ sightingId: b.id, reason: "crop no longer stored (removed by retention)" });
        continue;
      }
      const name = `${b.id}.jpg`;
      sightingOf.set(name, b.id);
      photos.push({ name, bytes: crop });
    }
    const enrolled: string[] = [];
    if (photos.length > 0) {
      const result = await this.watchlist.enrol(
        { id: personId, name: request.name ?? state.name ?? undefined, watchlistId: request.watchlistId },
        photos,
      );
      for (const o of result.outcomes) {
        const sightingId = sightingOf.get(o.file) ?? o.file;
        if (o.ok) enrolled.push(sightingId);
        else rejected.push({ sightingId, reason: o.reason ?? "refused" });
      }
    }
    // Only whom it became (and a name if it had none), on the identity as it is now, not as read before the
    // enrolment: the match stage may have joined sightings to it since. Gone meanwhile (merged, deleted): the
    // person stays enrolled, and the identity's remembering is moot.
    if (enrolled.length > 0)
      await this.store.patchUnknown(id, {
        promotedTo: personId,
        ...(state.name === null && request.name !== undefined ? { name: request.name } : {}),
      });
    return { personId, enrolled, rejected };
  }

  /**
   * Folds identity `fromId` into `intoId`: one identity with both's sightings, counts and centroid. The store
   * combines them as they are when it writes (SQLite: inside its transaction), so a sighting joining either
   * meanwhile is not lost.
   */
  async merge(intoId: string, fromId: string): Promise<UnknownIdentity> {
    return publicIdentity(await this.store.commitMerge(intoId, fromId));
  }

  /** Moves sightings that are not this stranger to a new identity of their own, and returns it. */
  async split(id: string, sightingIds: string[]): Promise<UnknownIdentity> {
    const ids = [...new Set(sightingIds)];
    if (ids.length === 0) throw new InvalidInputError("name at least one sighting to split off");
    const { created } = await this.store.commitSplit(id, newUnknownId(), ids);
    return publicIdentity(created);
  }

  /** Forgets the identity; its sightings stay, unlabelled. */
  async delete(id: string): Promise<void> {
    if (!(await this.store.deleteUnknown(id))) throw new NotFoundError(`no unknown identity ${id}`);
  }
}
