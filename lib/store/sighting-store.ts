import type { QualityScores } from "../contracts/index.ts";
import type { Box } from "../geometry/index.ts";
import type { Page, PageRequest } from "./paging.ts";

export interface SightingRecord {
  id: string;
  trackId: string;
  cameraId: string;
  startTs: number;
  endTs: number;
  faces: number;
  modelId: string;
  quality: QualityScores;
  match: { personId: string; name: string; score: number } | null;
  /**
   * The unknown identity a sighting that matched nobody was assigned to (lib/store/identity-store.ts); absent
   * when none. Set by assignment only: storing a sighting again keeps it.
   */
  unknownId?: string;
  /**
   * The best face's box, in the frame it was found in, and its capture time: to draw it over the sighting's clip.
   * Absent for sightings stored before they were kept.
   */
  box?: Box;
  boxTs?: number;
}

export interface Sighting extends SightingRecord {
  vector: Float32Array;
  /** JPEG of the track's best face. */
  crop: Uint8Array;
}

export interface SightingQuery {
  modelId: string;
  vector: Float32Array;
  cameras?: string[];
  since?: number;
  until?: number;
  top: number;
  /** Skips this many of the best hits first: `top` hits from rank `offset` on (paging a ranked list). */
  offset?: number;
}

/** Sightings by camera and time without a face to compare, newest first. */
export interface SightingBrowse extends PageRequest {
  cameras?: string[];
  /** Inclusive bounds on the sighting's start. */
  since?: number;
  until?: number;
  personId?: string;
  /** Only the sightings of this unknown identity. */
  unknownId?: string;
}

export interface SightingHit {
  sighting: SightingRecord;
  score: number;
}

/** Every sighting, searchable by face with camera and time filters; the embedded and Qdrant stores implement it. */
export interface SightingStore {
  /** Idempotent by id: a replayed sighting replaces itself. */
  addSightings(sightings: Sighting[]): Promise<void>;
  search(query: SightingQuery): Promise<SightingHit[]>;
  /** Sightings matched to a person, oldest first. */
  byPerson(personId: string, range?: { since?: number; until?: number }): Promise<SightingRecord[]>;
  crop(id: string): Promise<Uint8Array | undefined>;
  /** Deletes sightings (and their crops) that ended before `ts`; returns how many. */
  purgeBefore(ts: number): Promise<number>;
  count(): Promise<number>;
  /** With the track's mean vector, e.g. to say "this is not X" from a sighting. */
  getSighting(id: string): Promise<(SightingRecord & { vector: Float32Array }) | undefined>;
  browse(query: SightingBrowse): Promise<Page<SightingRecord>>;
}

/** A sighting record as flat columns/payload fields (the match spread out), shared by the stores. */
export function flattenSighting(s: SightingRecord) {
  return {
    id: s.id,
    trackId: s.trackId,
    cameraId: s.cameraId,
    startTs: s.startTs,
    endTs: s.endTs,
    faces: s.faces,
    modelId: s.modelId,
    quality: s.quality,
    personId: s.match?.personId ?? null,
    personName: s.match?.name ?? null,
    score: s.match?.score ?? null,
    box: s.box ?? null,
    boxTs: s.boxTs ?? null,
  };
}
