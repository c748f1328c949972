import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { bytesToVector, vectorToBytes } from "../contracts/index.ts";
import { VectorIndex } from "./vector-index.ts";
import {
  flattenSighting,
  type Sighting,
  type SightingHit,
  type SightingQuery,
  type SightingRecord,
  type SightingStore,
} from "./sighting-store.ts";
import type { EnrolledFace, Exclusion, Person, WatchlistMatch, WatchlistStore } from "./watchlist-store.ts";
import { cosine } from "../geometry/index.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS people (id TEXT PRIMARY KEY, name TEXT NOT NULL, watchlist_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS watchlists (id TEXT PRIMARY KEY, threshold REAL);
CREATE TABLE IF NOT EXISTS faces (
  face_id TEXT PRIMARY KEY, person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
  model_id TEXT NOT NULL, vector BLOB NOT NULL, source TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS exclusions (
  id TEXT PRIMARY KEY, person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
  model_id TEXT NOT NULL, vector BLOB NOT NULL, note TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sightings (
  id TEXT PRIMARY KEY, track_id TEXT NOT NULL, camera_id TEXT NOT NULL, start_ts INTEGER NOT NULL,
  end_ts INTEGER NOT NULL, faces INTEGER NOT NULL, model_id TEXT NOT NULL, vector BLOB NOT NULL,
  crop BLOB NOT NULL, quality TEXT NOT NULL, person_id TEXT, person_name TEXT, score REAL);
CREATE INDEX IF NOT EXISTS sightings_time ON sightings(start_ts);
CREATE INDEX IF NOT EXISTS sightings_person ON sightings(person_id, start_ts);
`;

interface SightingRow {
  id: string;
  track_id: string;
  camera_id: string;
  start_ts: number;
  end_ts: number;
  faces: number;
  model_id: string;
  quality: string;
  person_id: string | null;
  person_name: string | null;
  score: number | null;
}

const toRecord = (r: SightingRow): SightingRecord => ({
  id: r.id,
  trackId: r.track_id,
  cameraId: r.camera_id,
  startTs: r.start_ts,
  endTs: r.end_ts,
  faces: r.faces,
  modelId: r.model_id,
  quality: JSON.parse(r.quality) as SightingRecord["quality"],
  match: r.person_id ? { personId: r.person_id, name: r.person_name ?? "", score: r.score ?? 0 } : null,
});

/**
 * Per-model in-memory search state for sightings; rows align with the columns. Columns are typed arrays (camera
 * as a code into `cameraNames`): a million-element JS array of numbers or strings is a GC burden at every query.
 */
interface SightingIndex {
  index: VectorIndex;
  rowids: Column;
  start: Column;
  camera: Column;
}

/** A growable Float64Array. */
class Column {
  private data = new Float64Array(1024);
  length = 0;
  push(v: number) {
    if (this.length === this.data.length) {
      const grown = new Float64Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = v;
  }
  get(i: number): number {
    return this.data[i]!;
  }
  get bytes() {
    return this.data.byteLength;
  }
}

/**
 * The embedded store: one SQLite file (WAL; records, float vectors and crops survive a crash), with vectors
 * searched in memory. Sightings use an int8 index for candidates, rescored exactly from the stored floats.
 */
export class SqliteStore implements WatchlistStore, SightingStore {
  private readonly db: Database.Database;
  private faceIndexes = new Map<string, { index: VectorIndex; faceIds: string[] }>();
  private sightingIndexes = new Map<string, SightingIndex>();
  private people = new Map<string, Person>();
  private cameraCodes = new Map<string, number>();
  private facePerson = new Map<string, string>();

  constructor(readonly file: string) {
    if (file !== ":memory:") mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    this.db = new Database(file);
    this.db.pragma("journal_mode = WAL");
    // NORMAL in WAL mode survives any process crash; only an OS crash can lose the last transaction.
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("foreign_keys = ON");
    this.db.exec(SCHEMA);
    this.load();
  }

  close() {
    this.db.close();
  }

  private load() {
    for (const p of this.db.prepare("SELECT id, name, watchlist_id FROM people").all() as {
      id: string;
      name: string;
      watchlist_id: string;
    }[]) {
      this.people.set(p.id, { id: p.id, name: p.name, watchlistId: p.watchlist_id });
    }
    for (const f of this.db
      .prepare("SELECT face_id, person_id, model_id, vector FROM faces")
      .iterate() as Iterable<{ face_id: string; person_id: string; model_id: string; vector: Buffer }>) {
      this.indexFace(f.face_id, f.person_id, f.model_id, bytesToVector(f.vector));
    }
    this.indexAllSightings();
  }

  /** (Re)builds the in-memory sighting indexes from the file. */
  private indexAllSightings() {
    this.sightingIndexes.clear();
    const rows = this.db
      .prepare("SELECT rowid, camera_id, start_ts, model_id, vector FROM sightings ORDER BY start_ts")
      .iterate() as Iterable<{
      rowid: number;
      camera_id: string;
      start_ts: number;
      model_id: string;
      vector: Buffer;
    }>;
    for (const r of rows)
      this.indexSighting(r.rowid, r.model_id, r.camera_id, r.start_ts, bytesToVector(r.vector));
  }

  // ---- watchlist ----

  async upsertPerson(person: Person) {
    this.db
      .prepare(
        "INSERT INTO people (id, name, watchlist_id) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET name = excluded.name, watchlist_id = excluded.watchlist_id",
      )
      .run(person.id, person.name, person.watchlistId);
    this.people.set(person.id, { ...person });
  }

  async addFace(face: EnrolledFace) {
    if (!this.people.has(face.personId)) throw new Error(`unknown person ${face.personId}`);
    const existing = this.facePerson.has(face.faceId);
    this.db
      .prepare(
        "INSERT OR REPLACE INTO faces (face_id, person_id, model_id, vector, source) VALUES (?, ?, ?, ?, ?)",
      )
      .run(face.faceId, face.personId, face.modelId, vectorToBytes(face.vector), face.source);
    if (existing) this.dropFaceFromIndex(face.faceId);
    this.indexFace(face.faceId, face.personId, face.modelId, face.vector);
  }

  async removePerson(personId: string) {
    const faces = this.db.prepare("SELECT face_id FROM faces WHERE person_id = ?").all(personId) as {
      face_id: string;
    }[];
    const changed = this.db.prepare("DELETE FROM people WHERE id = ?").run(personId).changes > 0;
    for (const f of faces) this.dropFaceFromIndex(f.face_id);
    this.people.delete(personId);
    return changed;
  }

  async removeFace(faceId: string) {
    const changed = this.db.prepare("DELETE FROM faces WHERE face_id = ?").run(faceId).changes > 0;
    if (changed) this.dropFaceFromIndex(faceId);
    return changed;
  }

  async listPeople() {
    const counts = new Map<string, number>();
    for (const personId of this.facePerson.values()) counts.set(personId, (counts.get(personId) ?? 0) + 1);
    return [...this.people.values()]
      .sort((a, b) => a.id.localeCompare(b.id))
      .map((p) => ({ ...p, faces: counts.get(p.id) ?? 0 }));
  }

  async match(modelId: string, vectors: Float32Array[], k: number): Promise<WatchlistMatch[][]> {
    const entry = this.faceIndexes.get(modelId);
    if (!entry) return vectors.map(() => []);
    // Several photos per person: ask for enough rows that k distinct people survive.
    const hits = await entry.index.search(vectors, Math.min(entry.index.size, k * 8));
    return hits.map((list) => {
      const best = new Map<string, WatchlistMatch>();
      for (const h of list) {
        const faceId = entry.faceIds[h.row]!;
        const person = this.people.get(this.facePerson.get(faceId)!)!;
        if (!best.has(person.id)) best.set(person.id, { person, faceId, score: h.score });
      }
      return [...best.values()].slice(0, k);
    });
  }

  async addExclusion(e: Exclusion) {
    this.db
      .prepare(
        "INSERT OR REPLACE INTO exclusions (id, person_id, model_id, vector, note) VALUES (?, ?, ?, ?, ?)",
      )
      .run(e.id, e.personId, e.modelId, vectorToBytes(e.vector), e.note);
  }

  async exclusionScore(personId: string, modelId: string, vector: Float32Array) {
    let best = -1;
    const rows = this.db
      .prepare("SELECT vector FROM exclusions WHERE person_id = ? AND model_id = ?")
      .all(personId, modelId) as { vector: Buffer }[];
    for (const r of rows) best = Math.max(best, cosine(bytesToVector(r.vector), vector));
    return best;
  }

  async setWatchlistThreshold(watchlistId: string, threshold: number | null) {
    this.db
      .prepare(
        "INSERT INTO watchlists (id, threshold) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET threshold = excluded.threshold",
      )
      .run(watchlistId, threshold);
  }

  async watchlistThreshold(watchlistId: string) {
    const row = this.db.prepare("SELECT threshold FROM watchlists WHERE id = ?").get(watchlistId) as
      { threshold: number | null } | undefined;
    return row?.threshold ?? undefined;
  }

  private indexFace(faceId: string, personId: string, modelId: string, vector: Float32Array) {
    let entry = this.faceIndexes.get(modelId);
    if (!entry) {
      entry = { index: new VectorIndex(vector.length, "float32"), faceIds: [] };
      this.faceIndexes.set(modelId, entry);
    }
    entry.faceIds.push(faceId);
    entry.index.add(vector);
    this.facePerson.set(faceId, personId);
  }

  private dropFaceFromIndex(faceId: string) {
    for (const entry of this.faceIndexes.values()) {
      const row = entry.faceIds.indexOf(faceId);
      if (row < 0) continue;
      const moved = entry.index.swapRemove(row);
      if (moved >= 0) entry.faceIds[row] = entry.faceIds[moved]!;
      entry.faceIds.pop();
    }
    this.facePerson.delete(faceId);
  }

  // ---- sightings ----

  async addSightings(sightings: Sighting[]) {
    const upsert = this.db.prepare(
      `INSERT INTO sightings (id, track_id, camera_id, start_ts, end_ts, faces, model_id, vector, crop, quality, person_id, person_name, score)
       VALUES (@id, @trackId, @cameraId, @startTs, @endTs, @faces, @modelId, @vector, @crop, @quality, @personId, @personName, @score)
       ON CONFLICT(id) DO UPDATE SET end_ts = excluded.end_ts, faces = excluded.faces, vector = excluded.vector,
         crop = excluded.crop, quality = excluded.quality, person_id = excluded.person_id,
         person_name = excluded.person_name, score = excluded.score
       RETURNING rowid, (SELECT 1) AS ok`,
    );
    const known = this.db.prepare("SELECT rowid FROM sightings WHERE id = ?");
    const fresh: { rowid: number; s: Sighting }[] = [];
    this.db.transaction(() => {
      for (const s of sightings) {
        const existed = known.get(s.id) !== undefined;
        const row = upsert.get({
          ...flattenSighting(s),
          vector: vectorToBytes(s.vector),
          crop: s.crop,
          quality: JSON.stringify(s.quality),
        }) as { rowid: number };
        if (!existed) fresh.push({ rowid: row.rowid, s });
      }
    })();
    for (const { rowid, s } of fresh) this.indexSighting(rowid, s.modelId, s.cameraId, s.startTs, s.vector);
  }

  async search(q: SightingQuery): Promise<SightingHit[]> {
    const entry = this.sightingIndexes.get(q.modelId);
    if (!entry || q.top <= 0) return [];
    const cameras =
      q.cameras && q.cameras.length > 0
        ? new Set(q.cameras.map((c) => this.cameraCodes.get(c) ?? -1))
        : undefined;
    const since = q.since ?? -Infinity;
    const until = q.until ?? Infinity;
    const accept =
      cameras || q.since !== undefined || q.until !== undefined
        ? (row: number) => {
            const start = entry.start.get(row);
            return start >= since && start <= until && (!cameras || cameras.has(entry.camera.get(row)));
          }
        : undefined;
    // int8 scores pick candidates; the stored float vectors decide the order.
    const [candidates] = await entry.index.search([q.vector], Math.max(q.top * 10, 100), accept);
    const read = this.db.prepare("SELECT vector FROM sightings WHERE rowid = ?");
    const rescored = candidates!.map((c) => {
      const rowid = entry.rowids.get(c.row);
      const { vector } = read.get(rowid) as { vector: Buffer };
      return { rowid, score: cosine(bytesToVector(vector), q.vector) };
    });
    rescored.sort((a, b) => b.score - a.score);
    const top = rescored.slice(0, q.top);
    const fetch = this.db.prepare(
      "SELECT id, track_id, camera_id, start_ts, end_ts, faces, model_id, quality, person_id, person_name, score FROM sightings WHERE rowid = ?",
    );
    return top.map((t) => ({ sighting: toRecord(fetch.get(t.rowid) as SightingRow), score: t.score }));
  }

  async byPerson(personId: string, range: { since?: number; until?: number } = {}) {
    const rows = this.db
      .prepare(
        `SELECT id, track_id, camera_id, start_ts, end_ts, faces, model_id, quality, person_id, person_name, score
         FROM sightings WHERE person_id = ? AND start_ts >= ? AND start_ts <= ? ORDER BY start_ts`,
      )
      .all(personId, range.since ?? 0, range.until ?? Number.MAX_SAFE_INTEGER) as SightingRow[];
    return rows.map(toRecord);
  }

  async crop(id: string) {
    const row = this.db.prepare("SELECT crop FROM sightings WHERE id = ?").get(id) as
      { crop: Buffer } | undefined;
    return row ? new Uint8Array(row.crop) : undefined;
  }

  async purgeBefore(ts: number) {
    const removed = this.db.prepare("DELETE FROM sightings WHERE end_ts < ?").run(ts).changes;
    // Rows moved: rebuilding is simpler than patching and retention runs rarely.
    if (removed > 0) this.indexAllSightings();
    return removed;
  }

  async count() {
    return (this.db.prepare("SELECT count(*) AS n FROM sightings").get() as { n: number }).n;
  }

  /** Bytes of the in-memory sighting indexes (for the benchmark's memory report). */
  sightingIndexBytes(): number {
    let total = 0;
    for (const e of this.sightingIndexes.values())
      total += e.index.memoryBytes + e.rowids.length * 8 + e.start.length * 8;
    return total;
  }

  private indexSighting(
    rowid: number,
    modelId: string,
    cameraId: string,
    startTs: number,
    vector: Float32Array,
  ) {
    let entry = this.sightingIndexes.get(modelId);
    if (!entry) {
      entry = {
        index: new VectorIndex(vector.length, "int8"),
        rowids: new Column(),
        camera: new Column(),
        start: new Column(),
      };
      this.sightingIndexes.set(modelId, entry);
    }
    let code = this.cameraCodes.get(cameraId);
    if (code === undefined) {
      code = this.cameraCodes.size;
      this.cameraCodes.set(cameraId, code);
    }
    entry.index.add(vector);
    entry.rowids.push(rowid);
    entry.camera.push(code);
    entry.start.push(startTs);
  }
}
