import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { bytesToVector, vectorToBytes } from "../contracts/index.ts";
import { VectorIndex } from "./vector-index.ts";
import {
  flattenSighting,
  type Sighting,
  type SightingBrowse,
  type SightingHit,
  type SightingQuery,
  type SightingRecord,
  type SightingStore,
} from "./sighting-store.ts";
import type {
  EnrolledFace,
  EnrolledPhoto,
  Exclusion,
  ExclusionInfo,
  FaceVector,
  Person,
  WatchlistInfo,
  WatchlistMatch,
  WatchlistStore,
} from "./watchlist-store.ts";
import type {
  Acknowledgement,
  AlertFilter,
  AlertQuery,
  AlertRecord,
  AlertStore,
  NewAlert,
} from "./alert-store.ts";
import { ALERT_COLUMNS, alertConditions, toAlert, type AlertRow } from "./alert-rows.ts";
import { SqlParams } from "./sql-params.ts";
import type { StateStore } from "./state-store.ts";
import type { Page } from "./paging.ts";
import { keysetPage } from "./sqlite-paging.ts";
import { cosine, type Box } from "../geometry/index.ts";
import { SqliteIdentities } from "./sqlite-identities.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS people (id TEXT PRIMARY KEY, name TEXT NOT NULL, watchlist_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS watchlists (id TEXT PRIMARY KEY, threshold REAL);
CREATE TABLE IF NOT EXISTS faces (
  face_id TEXT PRIMARY KEY, person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
  model_id TEXT NOT NULL, vector BLOB NOT NULL, source TEXT NOT NULL, crop BLOB);
CREATE TABLE IF NOT EXISTS exclusions (
  id TEXT PRIMARY KEY, person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
  model_id TEXT NOT NULL, vector BLOB NOT NULL, note TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sightings (
  id TEXT PRIMARY KEY, track_id TEXT NOT NULL, camera_id TEXT NOT NULL, start_ts INTEGER NOT NULL,
  end_ts INTEGER NOT NULL, faces INTEGER NOT NULL, model_id TEXT NOT NULL, vector BLOB NOT NULL,
  crop BLOB NOT NULL, quality TEXT NOT NULL, person_id TEXT, person_name TEXT, score REAL, box TEXT,
  box_ts INTEGER);
CREATE INDEX IF NOT EXISTS sightings_time ON sightings(start_ts);
CREATE INDEX IF NOT EXISTS sightings_person ON sightings(person_id, start_ts);
CREATE INDEX IF NOT EXISTS sightings_camera ON sightings(camera_id, start_ts);
CREATE TABLE IF NOT EXISTS alerts (
  id TEXT PRIMARY KEY, watchlist_id TEXT NOT NULL, person_id TEXT NOT NULL, person_name TEXT NOT NULL,
  camera_id TEXT NOT NULL, ts INTEGER NOT NULL, score REAL NOT NULL, threshold REAL NOT NULL,
  model_id TEXT NOT NULL, face_id TEXT NOT NULL, box TEXT NOT NULL, crop BLOB NOT NULL, vector BLOB,
  ack_by TEXT, ack_ts INTEGER, ack_note TEXT, matched_face_id TEXT);
CREATE INDEX IF NOT EXISTS alerts_time ON alerts(ts, id);
CREATE INDEX IF NOT EXISTS alerts_person_camera ON alerts(person_id, camera_id, ts);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value BLOB NOT NULL, updated_ts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS store_versions (name TEXT PRIMARY KEY, version INTEGER NOT NULL);
INSERT OR IGNORE INTO store_versions (name, version) VALUES ('watchlist', 0), ('sightings', 0);
${["people", "faces"]
  .flatMap((table) =>
    ["INSERT", "UPDATE", "DELETE"].map(
      (op) => `CREATE TRIGGER IF NOT EXISTS ${table}_${op.toLowerCase()}_version AFTER ${op} ON ${table}
  BEGIN UPDATE store_versions SET version = version + 1 WHERE name = 'watchlist'; END;`,
    ),
  )
  .join("\n")}
`;

/** An enrolled photo without its vector; the crop's presence only, not its bytes. */
const PHOTO_COLUMNS = "face_id, person_id, model_id, source, crop IS NOT NULL AS has_crop";

interface PhotoRow {
  face_id: string;
  person_id: string;
  model_id: string;
  source: string;
  has_crop: number;
}

const toPhoto = (r: PhotoRow): EnrolledPhoto => ({
  faceId: r.face_id,
  personId: r.person_id,
  modelId: r.model_id,
  source: r.source,
  hasCrop: r.has_crop === 1,
});

/**
 * A column added to files made before it existed; their rows stay without a value. In a write transaction, so two
 * processes opening an old file add it once.
 */
function addColumn(db: Database.Database, table: string, column: string, type: string) {
  const has = () =>
    (db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).some((c) => c.name === column);
  // Only an old file takes the write lock.
  if (has()) return;
  db.transaction(() => {
    if (!has()) db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`);
  }).immediate();
}

const SIGHTING_COLUMNS =
  "id, track_id, camera_id, start_ts, end_ts, faces, model_id, quality, person_id, person_name, score, unknown_id, " +
  "box, box_ts";

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
  unknown_id: string | null;
  box: string | null;
  box_ts: number | null;
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
  ...(r.unknown_id ? { unknownId: r.unknown_id } : {}),
  ...(r.box ? { box: JSON.parse(r.box) as Box } : {}),
  ...(r.box_ts !== null ? { boxTs: r.box_ts } : {}),
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

type FaceIndexes = Map<string, { index: VectorIndex; faceIds: string[] }>;

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
 * Counters bumped in the same transaction as the writes they describe, so other connections can tell: the
 * watchlist's by triggers (whoever writes, whatever the code path), the sightings' by deletes here (a trigger per
 * row would slow a retention purge of millions of rows; new rows are found by rowid instead).
 */
type Versioned = "watchlist" | "sightings";

export interface SqliteStoreOptions {
  /**
   * At most this often (ms) a read that uses the in-memory indexes first checks whether another connection (another
   * process, or another store on the same file) changed the file: `PRAGMA data_version`, a few microseconds.
   */
  refreshMs?: number;
}

/** Range filter on a time column, and an `IN (…)` list of cameras, as SQL with their parameters. */
function filters(
  column: { ts: string; camera: string },
  q: { cameras?: string[]; since?: number; until?: number },
) {
  const where: string[] = [];
  const params: unknown[] = [];
  if (q.cameras && q.cameras.length > 0) {
    where.push(`${column.camera} IN (${q.cameras.map(() => "?").join(", ")})`);
    params.push(...q.cameras);
  }
  if (q.since !== undefined) {
    where.push(`${column.ts} >= ?`);
    params.push(q.since);
  }
  if (q.until !== undefined) {
    where.push(`${column.ts} <= ?`);
    params.push(q.until);
  }
  return { where, params };
}

/**
 * The embedded store: one SQLite file (WAL; records, float vectors and crops survive a crash), with vectors
 * searched in memory. Sightings use an int8 index for candidates, rescored exactly from the stored floats.
 *
 * Several processes may share the file (`vigil run` matching while `vigil enroll` adds a person): every watchlist
 * or sighting write bumps a counter in `store_versions`, and reads that use the in-memory indexes first look at
 * `PRAGMA data_version` (which changes only when another connection commits), at most every `refreshMs`. Only
 * then are the counters read, and only what changed is reloaded.
 */
export class SqliteStore implements WatchlistStore, SightingStore, AlertStore, StateStore {
  private readonly db: Database.Database;
  private faceIndexes: FaceIndexes = new Map();
  private sightingIndexes = new Map<string, SightingIndex>();
  private people = new Map<string, Person>();
  private cameraCodes = new Map<string, number>();
  private facePerson = new Map<string, string>();
  private readonly refreshMs: number;
  private dataVersion = 0;
  private known: Record<Versioned, number> = { watchlist: 0, sightings: 0 };
  /** The highest sightings rowid in the in-memory index: newer rows are someone else's to pick up. */
  private syncedRowid = 0;
  private lastCheck = -Infinity;
  private reloadWatchlist = false;
  // Prepared once: every write reads the counters.
  private versionQuery: Database.Statement | undefined;
  private writeTransaction: ((name: Versioned, fn: () => unknown) => unknown) | undefined;
  /** Reloads done because the file changed (for tests and diagnostics). */
  readonly reloads = { watchlist: 0, sightings: 0 };
  /** Unknown identities: tables of their own beside the sightings they group. */
  readonly unknowns: SqliteIdentities;

  constructor(
    readonly file: string,
    options: SqliteStoreOptions = {},
  ) {
    if (file !== ":memory:") mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    this.refreshMs = options.refreshMs ?? 500;
    this.db = new Database(file);
    this.db.pragma("journal_mode = WAL");
    // NORMAL in WAL mode survives any process crash; only an OS crash can lose the last transaction.
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("foreign_keys = ON");
    this.db.exec(SCHEMA);
    // The enrolled face's aligned JPEG (faces enrolled before crops were kept have none), and which enrolled
    // face an alert matched (alerts raised before it was recorded have none), and the box and time of a
    // sighting's best face (sightings stored before they were kept have none).
    addColumn(this.db, "faces", "crop", "BLOB");
    addColumn(this.db, "alerts", "matched_face_id", "TEXT");
    addColumn(this.db, "sightings", "box", "TEXT");
    addColumn(this.db, "sightings", "box_ts", "INTEGER");
    this.unknowns = new SqliteIdentities(this.db);
    this.dataVersion = this.readDataVersion();
    // One read transaction: the counters and the rows they describe come from the same snapshot.
    this.db.transaction(() => {
      this.known = this.readVersions();
      this.loadWatchlist();
      this.indexAllSightings();
    })();
  }

  close() {
    this.db.close();
  }

  invalidate() {
    this.reloadWatchlist = true;
  }

  private readDataVersion(): number {
    return this.db.pragma("data_version", { simple: true }) as number;
  }

  private readVersions(): Record<Versioned, number> {
    const rows = this.db.prepare("SELECT name, version FROM store_versions").all() as {
      name: Versioned;
      version: number;
    }[];
    const out = { watchlist: 0, sightings: 0 };
    for (const r of rows) out[r.name] = r.version;
    return out;
  }

  private version(name: Versioned): number {
    this.versionQuery ??= this.db.prepare("SELECT version FROM store_versions WHERE name = ?");
    return (this.versionQuery.get(name) as { version: number }).version;
  }

  /**
   * Runs one of our own writes in a transaction, keeping `known` in step with the counter it moves. When the
   * counter had already moved (another connection's change, not loaded yet), `known` stays behind, so the next
   * check reloads instead of taking their change for ours.
   */
  private write<T>(name: Versioned, fn: () => T): T {
    // IMMEDIATE: a transaction that reads before it writes would fail at once (SQLITE_BUSY, no waiting) if another
    // process committed in between; taking the write lock first makes it wait its turn instead.
    this.writeTransaction ??= this.db.transaction((n: Versioned, f: () => unknown) => {
      const before = this.version(n);
      const result = f();
      if (before === this.known[n]) this.known[n] = this.version(n);
      return result;
    }).immediate;
    return this.writeTransaction(name, fn) as T;
  }

  /** Picks up what other connections committed, cheaply when nothing did. */
  private refresh() {
    const now = performance.now();
    if (!this.reloadWatchlist && now - this.lastCheck < this.refreshMs) return;
    this.lastCheck = now;
    const dataVersion = this.readDataVersion();
    if (dataVersion === this.dataVersion && !this.reloadWatchlist) return;
    this.dataVersion = dataVersion;
    this.db.transaction(() => {
      const versions = this.readVersions();
      if (this.reloadWatchlist || versions.watchlist !== this.known.watchlist) {
        this.loadWatchlist();
        this.reloads.watchlist++;
      }
      if (versions.sightings !== this.known.sightings) {
        this.indexAllSightings();
        this.reloads.sightings++;
      } else this.syncSightings();
      this.known = versions;
      this.reloadWatchlist = false;
    })();
  }

  /** Rebuilds the watchlist's in-memory state from the file and swaps it in whole (a match in flight keeps the old). */
  private loadWatchlist() {
    const people = new Map<string, Person>();
    const faceIndexes: FaceIndexes = new Map();
    const facePerson = new Map<string, string>();
    for (const p of this.db.prepare("SELECT id, name, watchlist_id FROM people").all() as {
      id: string;
      name: string;
      watchlist_id: string;
    }[]) {
      people.set(p.id, { id: p.id, name: p.name, watchlistId: p.watchlist_id });
    }
    for (const f of this.db
      .prepare("SELECT face_id, person_id, model_id, vector FROM faces")
      .iterate() as Iterable<{ face_id: string; person_id: string; model_id: string; vector: Buffer }>) {
      indexFace(faceIndexes, facePerson, f.face_id, f.person_id, f.model_id, bytesToVector(f.vector));
    }
    this.people = people;
    this.faceIndexes = faceIndexes;
    this.facePerson = facePerson;
  }

  /** (Re)builds the in-memory sighting indexes from the file. */
  private indexAllSightings() {
    this.sightingIndexes.clear();
    this.syncedRowid = 0;
    const rows = this.db
      .prepare("SELECT rowid, camera_id, start_ts, model_id, vector FROM sightings ORDER BY start_ts")
      .iterate() as Iterable<{
      rowid: number;
      camera_id: string;
      start_ts: number;
      model_id: string;
      vector: Buffer;
    }>;
    for (const r of rows) {
      this.indexSighting(r.rowid, r.model_id, r.camera_id, r.start_ts, bytesToVector(r.vector));
      this.syncedRowid = Math.max(this.syncedRowid, r.rowid);
    }
  }

  /**
   * Indexes sightings rows newer than the index. New rows always get higher rowids (SQLite hands out max + 1, and
   * only a delete, which bumps the sightings counter and rebuilds, can lower the max), so this finds every row
   * written since, by this connection or another. `ours` are vectors already in hand.
   */
  private syncSightings(ours?: Map<number, Float32Array>) {
    const rows = this.db
      .prepare("SELECT rowid, camera_id, start_ts, model_id FROM sightings WHERE rowid > ? ORDER BY rowid")
      .all(this.syncedRowid) as { rowid: number; camera_id: string; start_ts: number; model_id: string }[];
    if (rows.length === 0) return;
    const read = this.db.prepare("SELECT vector FROM sightings WHERE rowid = ?");
    for (const r of rows) {
      const vector = ours?.get(r.rowid) ?? bytesToVector((read.get(r.rowid) as { vector: Buffer }).vector);
      this.indexSighting(r.rowid, r.model_id, r.camera_id, r.start_ts, vector);
    }
    this.syncedRowid = rows.at(-1)!.rowid;
  }

  // ---- watchlist ----

  async upsertPerson(person: Person) {
    this.write("watchlist", () =>
      this.db
        .prepare(
          "INSERT INTO people (id, name, watchlist_id) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET name = excluded.name, watchlist_id = excluded.watchlist_id",
        )
        .run(person.id, person.name, person.watchlistId),
    );
    this.people.set(person.id, { ...person });
  }

  async addFace(face: EnrolledFace) {
    this.refresh();
    if (!this.people.has(face.personId)) throw new Error(`unknown person ${face.personId}`);
    const existing = this.facePerson.has(face.faceId);
    this.write("watchlist", () =>
      this.db
        .prepare(
          "INSERT OR REPLACE INTO faces (face_id, person_id, model_id, vector, source, crop) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .run(
          face.faceId,
          face.personId,
          face.modelId,
          vectorToBytes(face.vector),
          face.source,
          face.crop ?? null,
        ),
    );
    if (existing) this.dropFaceFromIndex(face.faceId);
    indexFace(this.faceIndexes, this.facePerson, face.faceId, face.personId, face.modelId, face.vector);
  }

  async removePerson(personId: string) {
    const faces = this.db.prepare("SELECT face_id FROM faces WHERE person_id = ?").all(personId) as {
      face_id: string;
    }[];
    const changed = this.write(
      "watchlist",
      () => this.db.prepare("DELETE FROM people WHERE id = ?").run(personId).changes > 0,
    );
    for (const f of faces) this.dropFaceFromIndex(f.face_id);
    this.people.delete(personId);
    return changed;
  }

  async removeFace(faceId: string) {
    const changed = this.write(
      "watchlist",
      () => this.db.prepare("DELETE FROM faces WHERE face_id = ?").run(faceId).changes > 0,
    );
    if (changed) this.dropFaceFromIndex(faceId);
    return changed;
  }

  async listPeople() {
    // From the file, not the in-memory index: always current, whoever wrote it.
    const rows = this.db
      .prepare(
        `SELECT p.id, p.name, p.watchlist_id, count(f.face_id) AS faces
         FROM people p LEFT JOIN faces f ON f.person_id = p.id GROUP BY p.id`,
      )
      .all() as { id: string; name: string; watchlist_id: string; faces: number }[];
    return rows
      .map((r) => ({ id: r.id, name: r.name, watchlistId: r.watchlist_id, faces: r.faces }))
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  async getPerson(personId: string) {
    const r = this.db
      .prepare(
        `SELECT p.id, p.name, p.watchlist_id, (SELECT count(*) FROM faces f WHERE f.person_id = p.id) AS faces
         FROM people p WHERE p.id = ?`,
      )
      .get(personId) as { id: string; name: string; watchlist_id: string; faces: number } | undefined;
    return r ? { id: r.id, name: r.name, watchlistId: r.watchlist_id, faces: r.faces } : undefined;
  }

  async getFace(faceId: string): Promise<EnrolledPhoto | undefined> {
    const r = this.db.prepare(`SELECT ${PHOTO_COLUMNS} FROM faces WHERE face_id = ?`).get(faceId) as
      PhotoRow | undefined;
    return r ? toPhoto(r) : undefined;
  }

  async listFaces(personId: string): Promise<EnrolledPhoto[]> {
    const rows = this.db
      .prepare(`SELECT ${PHOTO_COLUMNS} FROM faces WHERE person_id = ? ORDER BY face_id`)
      .all(personId) as PhotoRow[];
    return rows.map(toPhoto);
  }

  async listFaceVectors(modelId: string): Promise<FaceVector[]> {
    const rows = this.db
      .prepare("SELECT face_id, person_id, vector FROM faces WHERE model_id = ? ORDER BY face_id")
      .all(modelId) as { face_id: string; person_id: string; vector: Buffer }[];
    return rows.map((r) => ({ faceId: r.face_id, personId: r.person_id, vector: bytesToVector(r.vector) }));
  }

  async faceCrop(faceId: string) {
    const row = this.db.prepare("SELECT crop FROM faces WHERE face_id = ?").get(faceId) as
      { crop: Buffer | null } | undefined;
    return row?.crop ? new Uint8Array(row.crop) : undefined;
  }

  async match(modelId: string, vectors: Float32Array[], k: number): Promise<WatchlistMatch[][]> {
    this.refresh();
    const entry = this.faceIndexes.get(modelId);
    if (!entry || entry.index.size === 0 || k <= 0) return vectors.map(() => []);
    // A reload swaps these maps for new ones; the search below answers from the ones it started with.
    const people = this.people;
    const facePerson = this.facePerson;
    // Several photos per person: ask for enough rows that k distinct people survive.
    const hits = await entry.index.search(vectors, Math.min(entry.index.size, k * 8));
    return hits.map((list) => {
      const best = new Map<string, WatchlistMatch>();
      for (const h of list) {
        const faceId = entry.faceIds[h.row];
        const personId = faceId === undefined ? undefined : facePerson.get(faceId);
        const person = personId === undefined ? undefined : people.get(personId);
        if (person && !best.has(person.id)) best.set(person.id, { person, faceId: faceId!, score: h.score });
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

  async listExclusions(personId: string): Promise<ExclusionInfo[]> {
    const rows = this.db
      .prepare("SELECT id, person_id, model_id, note FROM exclusions WHERE person_id = ? ORDER BY id")
      .all(personId) as { id: string; person_id: string; model_id: string; note: string }[];
    return rows.map((r) => ({ id: r.id, personId: r.person_id, modelId: r.model_id, note: r.note }));
  }

  async removeExclusion(id: string) {
    return this.db.prepare("DELETE FROM exclusions WHERE id = ?").run(id).changes > 0;
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

  async listWatchlists(): Promise<WatchlistInfo[]> {
    const rows = this.db
      .prepare(
        `SELECT id, max(threshold) AS threshold, sum(people) AS people FROM (
           SELECT watchlist_id AS id, NULL AS threshold, count(*) AS people FROM people GROUP BY watchlist_id
           UNION ALL SELECT id, threshold, 0 FROM watchlists WHERE threshold IS NOT NULL)
         GROUP BY id ORDER BY id`,
      )
      .all() as { id: string; threshold: number | null; people: number }[];
    return rows.map((r) => ({ id: r.id, threshold: r.threshold ?? undefined, people: r.people }));
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
    // Brings in other connections' rows first, so the rows this write adds are the only new ones left.
    this.refresh();
    const upsert = this.db.prepare(
      `INSERT INTO sightings (id, track_id, camera_id, start_ts, end_ts, faces, model_id, vector, crop, quality, person_id, person_name, score, box, box_ts)
       VALUES (@id, @trackId, @cameraId, @startTs, @endTs, @faces, @modelId, @vector, @crop, @quality, @personId, @personName, @score, @box, @boxTs)
       ON CONFLICT(id) DO UPDATE SET end_ts = excluded.end_ts, faces = excluded.faces, vector = excluded.vector,
         crop = excluded.crop, quality = excluded.quality, person_id = excluded.person_id,
         person_name = excluded.person_name, score = excluded.score,
         -- A replay without the best face's box (sent before boxes were) keeps the box already stored.
         box = COALESCE(excluded.box, box), box_ts = CASE WHEN excluded.box IS NULL THEN box_ts ELSE excluded.box_ts END
       RETURNING rowid`,
    );
    const ours = new Map<number, Float32Array>();
    this.db.transaction(() => {
      for (const s of sightings) {
        const row = upsert.get({
          ...flattenSighting(s),
          vector: vectorToBytes(s.vector),
          crop: s.crop,
          quality: JSON.stringify(s.quality),
          box: s.box ? JSON.stringify(s.box) : null,
        }) as { rowid: number };
        ours.set(row.rowid, s.vector);
      }
    })();
    // A replay keeps its rowid (already indexed); only rows past the index are new.
    this.syncSightings(ours);
  }

  async search(q: SightingQuery): Promise<SightingHit[]> {
    this.refresh();
    const entry = this.sightingIndexes.get(q.modelId);
    const offset = Math.max(0, q.offset ?? 0);
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
    const wanted = offset + q.top;
    // int8 scores pick candidates; the stored float vectors decide the order.
    const [candidates] = await entry.index.search([q.vector], Math.max(wanted * 10, 100), accept);
    const read = this.db.prepare("SELECT vector FROM sightings WHERE rowid = ?");
    const rescored = candidates!.flatMap((c) => {
      const rowid = entry.rowids.get(c.row);
      // Purged by another process since the index was built: skip rather than fail.
      const row = read.get(rowid) as { vector: Buffer } | undefined;
      return row ? [{ rowid, score: cosine(bytesToVector(row.vector), q.vector) }] : [];
    });
    rescored.sort((a, b) => b.score - a.score);
    const top = rescored.slice(offset, wanted);
    const fetch = this.db.prepare(`SELECT ${SIGHTING_COLUMNS} FROM sightings WHERE rowid = ?`);
    return top.map((t) => ({ sighting: toRecord(fetch.get(t.rowid) as SightingRow), score: t.score }));
  }

  async byPerson(personId: string, range: { since?: number; until?: number } = {}) {
    const rows = this.db
      .prepare(
        `SELECT ${SIGHTING_COLUMNS}
         FROM sightings WHERE person_id = ? AND start_ts >= ? AND start_ts <= ? ORDER BY start_ts`,
      )
      .all(personId, range.since ?? 0, range.until ?? Number.MAX_SAFE_INTEGER) as SightingRow[];
    return rows.map(toRecord);
  }

  async browse(q: SightingBrowse): Promise<Page<SightingRecord>> {
    const { where, params } = filters({ ts: "start_ts", camera: "camera_id" }, q);
    if (q.personId !== undefined) {
      where.push("person_id = ?");
      params.push(q.personId);
    }
    if (q.unknownId !== undefined) {
      where.push("unknown_id = ?");
      params.push(q.unknownId);
    }
    return keysetPage(
      this.db,
      { from: `SELECT ${SIGHTING_COLUMNS} FROM sightings`, tsColumn: "start_ts", where, params, request: q },
      toRecord,
      (s: SightingRecord) => ({ ts: s.startTs, id: s.id }),
    );
  }

  async getSighting(id: string) {
    const row = this.db.prepare(`SELECT ${SIGHTING_COLUMNS}, vector FROM sightings WHERE id = ?`).get(id) as
      (SightingRow & { vector: Buffer }) | undefined;
    return row ? { ...toRecord(row), vector: bytesToVector(row.vector) } : undefined;
  }

  async crop(id: string) {
    const row = this.db.prepare("SELECT crop FROM sightings WHERE id = ?").get(id) as
      { crop: Buffer } | undefined;
    return row ? new Uint8Array(row.crop) : undefined;
  }

  async purgeBefore(ts: number) {
    const removed = this.write("sightings", () => {
      const n = this.db.prepare("DELETE FROM sightings WHERE end_ts < ?").run(ts).changes;
      if (n > 0)
        this.db.prepare("UPDATE store_versions SET version = version + 1 WHERE name = 'sightings'").run();
      return n;
    });
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

  // ---- alerts ----

  async addAlerts(alerts: NewAlert[]) {
    // The acknowledgement columns are left out of the update: a replay must not undo an operator's ack.
    const upsert = this.db.prepare(
      `INSERT INTO alerts (id, watchlist_id, person_id, person_name, camera_id, ts, score, threshold, model_id, face_id, box, crop, vector, matched_face_id)
       VALUES (@id, @watchlistId, @personId, @personName, @cameraId, @ts, @score, @threshold, @modelId, @faceId, @box, @crop, @vector, @matchedFaceId)
       ON CONFLICT(id) DO UPDATE SET watchlist_id = excluded.watchlist_id, person_id = excluded.person_id,
         person_name = excluded.person_name, camera_id = excluded.camera_id, ts = excluded.ts, score = excluded.score,
         threshold = excluded.threshold, model_id = excluded.model_id, face_id = excluded.face_id, box = excluded.box,
         crop = excluded.crop, vector = coalesce(excluded.vector, alerts.vector),
         matched_face_id = coalesce(excluded.matched_face_id, alerts.matched_face_id)`,
    );
    this.db.transaction(() => {
      for (const a of alerts)
        upsert.run({
          id: a.id,
          watchlistId: a.watchlistId,
          personId: a.personId,
          personName: a.personName,
          cameraId: a.cameraId,
          ts: a.ts,
          score: a.score,
          threshold: a.threshold,
          modelId: a.modelId,
          faceId: a.faceId,
          box: JSON.stringify(a.box),
          crop: a.crop,
          vector: a.vector ? vectorToBytes(a.vector) : null,
          matchedFaceId: a.matchedFaceId ?? null,
        });
    })();
  }

  async getAlert(id: string) {
    const row = this.db.prepare(`SELECT ${ALERT_COLUMNS}, vector FROM alerts WHERE id = ?`).get(id) as
      (AlertRow & { vector: Buffer | null }) | undefined;
    return row ? { ...toAlert(row), vector: row.vector ? bytesToVector(row.vector) : null } : undefined;
  }

  async alertVectors(ids: string[]) {
    const out = new Map<string, Float32Array>();
    // A bounded number of bound parameters per statement, whatever the caller asks for.
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      const rows = this.db
        .prepare(
          `SELECT id, vector FROM alerts WHERE vector IS NOT NULL AND id IN (${chunk.map(() => "?").join(", ")})`,
        )
        .all(...chunk) as { id: string; vector: Buffer }[];
      for (const r of rows) out.set(r.id, bytesToVector(r.vector));
    }
    return out;
  }

  async alertCrop(id: string) {
    const row = this.db.prepare("SELECT crop FROM alerts WHERE id = ?").get(id) as
      { crop: Buffer } | undefined;
    return row ? new Uint8Array(row.crop) : undefined;
  }

  private alertWhere(q: AlertFilter) {
    const params = new SqlParams("?");
    return { where: alertConditions(q, params), params: params.values };
  }

  async listAlerts(q: AlertQuery): Promise<Page<AlertRecord>> {
    const { where, params } = this.alertWhere(q);
    return keysetPage(
      this.db,
      { from: `SELECT ${ALERT_COLUMNS} FROM alerts`, tsColumn: "ts", where, params, request: q },
      toAlert,
      (a: AlertRecord) => ({ ts: a.ts, id: a.id }),
    );
  }

  async countAlerts(filter: AlertFilter = {}) {
    const { where, params } = this.alertWhere(filter);
    return (
      this.db
        .prepare(`SELECT count(*) AS n FROM alerts ${where.length ? `WHERE ${where.join(" AND ")}` : ""}`)
        .get(...params) as { n: number }
    ).n;
  }

  async acknowledgeAlert(id: string, ack: Acknowledgement) {
    this.db
      .prepare("UPDATE alerts SET ack_by = ?, ack_ts = ?, ack_note = ? WHERE id = ? AND ack_by IS NULL")
      .run(ack.by, ack.ts, ack.note, id);
    const row = this.db.prepare(`SELECT ${ALERT_COLUMNS} FROM alerts WHERE id = ?`).get(id) as
      AlertRow | undefined;
    return row ? toAlert(row) : undefined;
  }

  async lastAlert(personId: string, cameraId: string, beforeTs: number) {
    const row = this.db
      .prepare(
        `SELECT ${ALERT_COLUMNS} FROM alerts WHERE person_id = ? AND camera_id = ? AND ts < ?
         ORDER BY ts DESC, id DESC LIMIT 1`,
      )
      .get(personId, cameraId, beforeTs) as AlertRow | undefined;
    return row ? toAlert(row) : undefined;
  }

  async purgeAlertsBefore(ts: number) {
    return this.db.prepare("DELETE FROM alerts WHERE ts < ?").run(ts).changes;
  }

  // ---- state ----

  async saveState(key: string, bytes: Uint8Array) {
    this.db
      .prepare(
        "INSERT INTO state (key, value, updated_ts) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_ts = excluded.updated_ts",
      )
      .run(key, bytes, Date.now());
  }

  async loadState(key: string) {
    const row = this.db.prepare("SELECT value FROM state WHERE key = ?").get(key) as
      { value: Buffer } | undefined;
    return row ? new Uint8Array(row.value) : undefined;
  }

  async deleteState(key: string) {
    return this.db.prepare("DELETE FROM state WHERE key = ?").run(key).changes > 0;
  }

  async stateKeys(prefix = "") {
    // substr, not LIKE: keys may hold % and _.
    const rows = this.db
      .prepare("SELECT key FROM state WHERE substr(key, 1, ?) = ? ORDER BY key")
      .all(prefix.length, prefix) as { key: string }[];
    return rows.map((r) => r.key);
  }
}

function indexFace(
  indexes: FaceIndexes,
  facePerson: Map<string, string>,
  faceId: string,
  personId: string,
  modelId: string,
  vector: Float32Array,
) {
  let entry = indexes.get(modelId);
  if (!entry) {
    entry = { index: new VectorIndex(vector.length, "float32"), faceIds: [] };
    indexes.set(modelId, entry);
  }
  entry.faceIds.push(faceId);
  entry.index.add(vector);
  facePerson.set(faceId, personId);
}
