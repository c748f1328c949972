import type { AlertFilter, AlertQuery, AlertRecord, AlertStore } from "../store/alert-store.ts";
import { InvalidInputError, NotFoundError } from "../store/errors.ts";
import { checkLimit, type Page } from "../store/paging.ts";
import type { SightingBrowse, SightingHit, SightingRecord, SightingStore } from "../store/sighting-store.ts";
import { photoName, type PhotoEmbedder, type PhotoInput } from "../watchlist/photo.ts";
import { buildTimeline, type Visit } from "./timeline.ts";
import { isUnknownId } from "../identities/identity.ts";
import { sightingsOfUnknown } from "../identities/service.ts";

export interface HistoryServiceDeps {
  store: SightingStore & AlertStore;
  photos: PhotoEmbedder;
  /** The calibrated same-person threshold of a model (config may override it). */
  thresholdFor: (modelId: string) => number;
  clock?: () => number;
}

export interface SearchFilters {
  cameras?: string[];
  since?: number;
  until?: number;
}

export interface SearchRequest extends SearchFilters {
  limit: number;
  /** Rank of the first hit to return: `nextOffset` of the previous page. */
  offset?: number;
}

export interface SearchResult {
  modelId: string;
  /** Hits at or above it are the same person, at the calibrated false-accept rate. */
  threshold: number;
  hits: (SightingHit & { samePerson: boolean })[];
  /** Null on the last page. */
  nextOffset: number | null;
}

export interface TimelineResult {
  visits: Visit[];
  sightings: number;
  /** By photo: the threshold that decided which sightings are this person. */
  threshold?: number;
}

/** Enough for months of one person; a timeline is not paged. */
const TIMELINE_MAX = 10_000;

/**
 * History's use cases in one place — search by photo, browse without one, crops, timelines, and the alerts an
 * operator works through — for the CLI and the HTTP API alike.
 */
export class HistoryService {
  private readonly store: SightingStore & AlertStore;
  private readonly photos: PhotoEmbedder;
  private readonly thresholdFor: (modelId: string) => number;
  private readonly clock: () => number;

  constructor(deps: HistoryServiceDeps) {
    this.store = deps.store;
    this.photos = deps.photos;
    this.thresholdFor = deps.thresholdFor;
    this.clock = deps.clock ?? Date.now;
  }

  private async faceOf(photo: PhotoInput) {
    const face = await this.photos.embedPhoto(photo);
    if (!face.ok) throw new InvalidInputError(`${photoName(photo)}: ${face.reason}`);
    return face;
  }

  /** "Where has this face been?": stored sightings by similarity to the face in the photo, best first. */
  async searchByPhoto(photo: PhotoInput, request: SearchRequest): Promise<SearchResult> {
    const face = await this.faceOf(photo);
    return this.searchByVector(face.modelId, face.vector, request);
  }

  async searchByVector(modelId: string, vector: Float32Array, request: SearchRequest): Promise<SearchResult> {
    const limit = checkLimit(request.limit);
    const offset = request.offset ?? 0;
    if (!Number.isInteger(offset) || offset < 0)
      throw new InvalidInputError(`offset must be a whole number ≥ 0, got ${offset}`);
    checkRange(request);
    const threshold = this.thresholdFor(modelId);
    // One more than the page tells whether another follows.
    const hits = await this.store.search({
      modelId,
      vector,
      cameras: request.cameras,
      since: request.since,
      until: request.until,
      top: limit + 1,
      offset,
    });
    return {
      modelId,
      threshold,
      hits: hits.slice(0, limit).map((h) => ({ ...h, samePerson: h.score >= threshold })),
      nextOffset: hits.length > limit ? offset + limit : null,
    };
  }

  /** Sightings by camera, time and matched person, newest first, without a photo. */
  browseSightings(request: SightingBrowse): Promise<Page<SightingRecord>> {
    checkRange(request);
    return this.store.browse(request);
  }

  async sighting(id: string): Promise<SightingRecord> {
    const found = await this.store.getSighting(id);
    if (!found) throw new NotFoundError(`no sighting ${id}`);
    const { vector: _vector, ...record } = found;
    return record;
  }

  /** JPEG of the sighting's best face. */
  async sightingCrop(id: string): Promise<Uint8Array> {
    const crop = await this.store.crop(id);
    if (!crop) throw new NotFoundError(`no sighting ${id}`);
    return crop;
  }

  /**
   * A person's path across cameras: by their watchlist matches, or by a photo (every sighting at or above the
   * calibrated threshold, which also finds people who were never enrolled).
   */
  async timeline(
    who: { personId: string } | { photo: PhotoInput },
    options: { since?: number; until?: number; mergeGapMs?: number } = {},
  ): Promise<TimelineResult> {
    checkRange(options);
    const mergeGapMs = options.mergeGapMs ?? 60_000;
    if ("personId" in who) {
      const sightings = await this.store.byPerson(who.personId, options);
      // An unknown identity's id is taken like a person's (and a person promoted from one may carry its id:
      // then the timeline holds both the stranger's sightings and the person's matches).
      if (isUnknownId(who.personId)) {
        const seen = new Set(sightings.map((s) => s.id));
        for (const s of await sightingsOfUnknown(this.store, who.personId, options))
          if (!seen.has(s.id)) sightings.push(s);
      }
      return { visits: buildTimeline(sightings, mergeGapMs), sightings: sightings.length };
    }
    const face = await this.faceOf(who.photo);
    const threshold = this.thresholdFor(face.modelId);
    const hits = await this.store.search({
      modelId: face.modelId,
      vector: face.vector,
      since: options.since,
      until: options.until,
      top: TIMELINE_MAX,
    });
    const same = hits.filter((h) => h.score >= threshold).map((h) => ({ ...h.sighting, score: h.score }));
    return { visits: buildTimeline(same, mergeGapMs), sightings: same.length, threshold };
  }

  // ---- alerts ----

  /** Newest first, filtered by camera, person, watchlist, time and whether acknowledged. */
  listAlerts(query: AlertQuery): Promise<Page<AlertRecord>> {
    checkRange(query);
    return this.store.listAlerts(query);
  }

  countAlerts(filter: AlertFilter = {}): Promise<number> {
    checkRange(filter);
    return this.store.countAlerts(filter);
  }

  async alert(id: string): Promise<AlertRecord> {
    const found = await this.store.getAlert(id);
    if (!found) throw new NotFoundError(`no alert ${id}`);
    const { vector: _vector, ...record } = found;
    return record;
  }

  async alertCrop(id: string): Promise<Uint8Array> {
    const crop = await this.store.alertCrop(id);
    if (!crop) throw new NotFoundError(`no alert ${id}`);
    return crop;
  }

  /** Who dealt with it and when; the first acknowledgement stands, so acknowledging twice is harmless. */
  async acknowledgeAlert(id: string, by: { by: string; note?: string }): Promise<AlertRecord> {
    if (!by.by.trim()) throw new InvalidInputError("say who acknowledges the alert");
    const record = await this.store.acknowledgeAlert(id, {
      by: by.by,
      ts: this.clock(),
      note: by.note ?? null,
    });
    if (!record) throw new NotFoundError(`no alert ${id}`);
    return record;
  }
}

function checkRange(q: { since?: number; until?: number }) {
  for (const [name, v] of [
    ["since", q.since],
    ["until", q.until],
  ] as const)
    if (v !== undefined && !Number.isFinite(v))
      throw new InvalidInputError(`${name} must be a time, got ${v}`);
  if (q.since !== undefined && q.until !== undefined && q.since > q.until)
    throw new InvalidInputError("since is after until");
}
