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
}

export interface WatchlistMatch {
  person: Person;
  faceId: string;
  score: number;
}

/** The watchlist behind one interface; the embedded (in-memory / SQLite) and Qdrant stores implement it. */
export interface WatchlistStore {
  upsertPerson(person: Person): Promise<void>;
  addFace(face: EnrolledFace): Promise<void>;
  removePerson(personId: string): Promise<boolean>;
  removeFace(faceId: string): Promise<boolean>;
  listPeople(): Promise<(Person & { faces: number })[]>;
  /** Best-scoring people for `vector` among faces of the same model, one entry per person, best first. */
  match(modelId: string, vector: Float32Array, k: number): Promise<WatchlistMatch[]>;
}
