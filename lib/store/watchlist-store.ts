export interface Person {
  id: string;
  name: string;
  watchlistId: string;
}

export interface EnrolledFace {
  faceId: string;
  personId: string;
  modelId: string;
  vector: Float32Array;
  /** Where the photo came from, for the operator. */
  source: string;
  /**
   * A small JPEG of the aligned face the vector was computed from, for an operator to compare with an alert's
   * face. Faces enrolled before crops were kept have none.
   */
  crop?: Uint8Array;
}

export interface WatchlistMatch {
  person: Person;
  faceId: string;
  score: number;
}

/** A confirmed false match ("this is not X"): faces close to it never alert for that person again. */
export interface Exclusion {
  id: string;
  personId: string;
  modelId: string;
  vector: Float32Array;
  note: string;
}

/**
 * The exclusion "this alert's face is not this person" is named after the alert, so saying it twice is one
 * exclusion, and training from the store (`vigil train --from-store`) can tell which alerts were disowned.
 */
export const alertExclusionId = (personId: string, alertId: string) => `${personId}:exclusion:${alertId}`;

/** An enrolled photo without its vector and pixels, for listings; `hasCrop` says whether `faceCrop` has them. */
export type EnrolledPhoto = Omit<EnrolledFace, "vector" | "crop"> & { hasCrop: boolean };
export type ExclusionInfo = Omit<Exclusion, "vector">;
/** An enrolled face's vector with whose it is: what training a head on the site's own faces reads. */
export type FaceVector = Pick<EnrolledFace, "faceId" | "personId" | "vector">;

export interface WatchlistInfo {
  id: string;
  /** Undefined: the model's calibrated threshold applies. */
  threshold: number | undefined;
  people: number;
}

/** The watchlist behind one interface; the embedded (in-memory / SQLite) and Qdrant stores implement it. */
export interface WatchlistStore {
  upsertPerson(person: Person): Promise<void>;
  addFace(face: EnrolledFace): Promise<void>;
  removePerson(personId: string): Promise<boolean>;
  removeFace(faceId: string): Promise<boolean>;
  listPeople(): Promise<(Person & { faces: number })[]>;
  /** Best-scoring people for each vector among faces of the same model, one entry per person, best first. */
  match(modelId: string, vectors: Float32Array[], k: number): Promise<WatchlistMatch[][]>;
  addExclusion(exclusion: Exclusion): Promise<void>;
  /** Highest similarity between `vector` and the person's exclusions (−1 when none). */
  exclusionScore(personId: string, modelId: string, vector: Float32Array): Promise<number>;
  /** A per-watchlist threshold overrides the model's calibrated one. */
  setWatchlistThreshold(watchlistId: string, threshold: number | null): Promise<void>;
  watchlistThreshold(watchlistId: string): Promise<number | undefined>;
  getPerson(personId: string): Promise<(Person & { faces: number }) | undefined>;
  getFace(faceId: string): Promise<EnrolledPhoto | undefined>;
  listFaces(personId: string): Promise<EnrolledPhoto[]>;
  /** Every enrolled face of one model with its vector, by face id (`vigil train --from-store`). */
  listFaceVectors(modelId: string): Promise<FaceVector[]>;
  /** The enrolled face's aligned crop (JPEG); undefined when there is no such face or it was kept without one. */
  faceCrop(faceId: string): Promise<Uint8Array | undefined>;
  listExclusions(personId: string): Promise<ExclusionInfo[]>;
  removeExclusion(id: string): Promise<boolean>;
  /** Every watchlist that has people or a threshold of its own. */
  listWatchlists(): Promise<WatchlistInfo[]>;
  /**
   * Forget anything cached about the watchlist: the next `match` reads it afresh. For a process told by others
   * (e.g. a `vigil.watchlist-changes` record) that the watchlist changed; stores also notice on their own.
   */
  invalidate(): void;
}
