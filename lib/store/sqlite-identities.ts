import type Database from "better-sqlite3";
import { bytesToVector, vectorToBytes } from "../contracts/index.ts";
import { centroidOf, joinsIdentity, nearestCentroid } from "../identities/clusterer.ts";
import {
  checkMerge,
  joinIdentity,
  mergeIdentities,
  splitIdentity,
  startIdentity,
  unknownIdFor,
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
import type { Page } from "./paging.ts";
import { keysetPage } from "./sqlite-paging.ts";

// Beside the sightings in the embedded store's file. `unknowns_version` moves with every write, so a process
// whose centroids are cached (the match stage) notices another's merge, split or deletion.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS unknowns (
  id TEXT PRIMARY KEY, model_id TEXT NOT NULL, name TEXT, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,
  count INTEGER NOT NULL, cameras TEXT NOT NULL, best TEXT NOT NULL, sum BLOB NOT NULL, promoted_to TEXT);
CREATE INDEX IF NOT EXISTS unknowns_last_seen ON unknowns(last_seen, id);
CREATE TABLE IF NOT EXISTS unknowns_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
INSERT OR IGNORE INTO unknowns_version (id, version) VALUES (1, 0);
`;

const COLUMNS = "id, model_id, name, first_seen, last_seen, count, cameras, best, sum, promoted_to";

interface Row {
  id: string;
  model_id: string;
  name: string | null;
  first_seen: number;
  last_seen: number;
  count: number;
  cameras: string;
  best: string;
  sum: Buffer;
  promoted_to: string | null;
}

const toState = (r: Row): IdentityState => ({
  id: r.id,
  name: r.name,
  modelId: r.model_id,
  firstSeen: r.first_seen,
  lastSeen: r.last_seen,
  count: r.count,
  cameras: JSON.parse(r.cameras) as string[],
  best: JSON.parse(r.best) as IdentityState["best"],
  sum: bytesToVector(r.sum),
  promotedTo: r.promoted_to,
});

/**
 * The sightings table's `unknown_id` column (added to files made before unknown identities existed) and its
 * index. Run before the sighting store's first query, which reads the column.
 */
export function migrateSightingsForUnknowns(db: Database.Database) {
  const columns = db.prepare("PRAGMA table_info(sightings)").all() as { name: string }[];
  if (!columns.some((c) => c.name === "unknown_id"))
    db.exec("ALTER TABLE sightings ADD COLUMN unknown_id TEXT");
  db.exec("CREATE INDEX IF NOT EXISTS sightings_unknown ON sightings(unknown_id, start_ts)");
}

/**
 * The embedded store's unknown identities: a table in its SQLite file; nearest centroid by an exact scan over
 * centroids cached in memory per model (a few thousand strangers are a few MB and microseconds), reloaded when
 * another connection changed them. Every change is one transaction with the sightings it relabels, so assignment
 * is exactly once per sighting and a merge or split is never half done; a merge or split reads the identities and
 * sightings it changes inside that transaction, and a rename or promotion updates only its columns, so an
 * assignment committed by another process in the meantime is never overwritten.
 */
export class SqliteIdentities implements IdentityStore {
  private centroids = new Map<string, { ids: string[]; centroids: Float32Array[] }>();
  private cachedVersion = -1;
  private readonly tx: <T>(fn: () => T) => T;

  constructor(private readonly db: Database.Database) {
    db.exec(SCHEMA);
    migrateSightingsForUnknowns(db);
    // IMMEDIATE: the read that decides (nearest centroid, already assigned?) and the write are one, across processes.
    this.tx = <T>(fn: () => T) => (db.transaction(fn) as unknown as { immediate: () => T }).immediate();
  }

  private version(): number {
    return (this.db.prepare("SELECT version FROM unknowns_version WHERE id = 1").get() as { version: number })
      .version;
  }

  private bump() {
    this.db.prepare("UPDATE unknowns_version SET version = version + 1 WHERE id = 1").run();
  }

  /** The cached centroids of a model, reloaded first if any connection changed identities since. */
  private cached(modelId: string) {
    const version = this.version();
    if (version !== this.cachedVersion) {
      const all = new Map<string, { ids: string[]; centroids: Float32Array[] }>();
      for (const r of this.db.prepare("SELECT id, model_id, sum FROM unknowns").iterate() as Iterable<{
        id: string;
        model_id: string;
        sum: Buffer;
      }>) {
        const entry = all.get(r.model_id) ?? { ids: [], centroids: [] };
        entry.ids.push(r.id);
        entry.centroids.push(centroidOf(bytesToVector(r.sum)));
        all.set(r.model_id, entry);
      }
      this.centroids = all;
      this.cachedVersion = version;
    }
    let entry = this.centroids.get(modelId);
    if (!entry) this.centroids.set(modelId, (entry = { ids: [], centroids: [] }));
    return entry;
  }

  private write(s: IdentityState) {
    this.db
      .prepare(
        `INSERT INTO unknowns (${COLUMNS}) VALUES (@id, @modelId, @name, @firstSeen, @lastSeen, @count, @cameras, @best, @sum, @promotedTo)
         ON CONFLICT(id) DO UPDATE SET model_id = excluded.model_id, name = excluded.name,
           first_seen = excluded.first_seen, last_seen = excluded.last_seen, count = excluded.count,
           cameras = excluded.cameras, best = excluded.best, sum = excluded.sum, promoted_to = excluded.promoted_to`,
      )
      .run({
        id: s.id,
        modelId: s.modelId,
        name: s.name,
        firstSeen: s.firstSeen,
        lastSeen: s.lastSeen,
        count: s.count,
        cameras: JSON.stringify(s.cameras),
        best: JSON.stringify(s.best),
        sum: vectorToBytes(s.sum),
        promotedTo: s.promotedTo,
      });
  }

  private read(id: string): IdentityState | undefined {
    const row = this.db.prepare(`SELECT ${COLUMNS} FROM unknowns WHERE id = ?`).get(id) as Row | undefined;
    return row ? toState(row) : undefined;
  }

  async assignUnknown(s: SightingWithVector, threshold: number): Promise<UnknownAssignment> {
    return this.tx(() => {
      const row = this.db.prepare("SELECT unknown_id FROM sightings WHERE id = ?").get(s.id) as
        { unknown_id: string | null } | undefined;
      if (!row) throw new Error(`sighting ${s.id} is not stored: store it before assigning it`);
      if (row.unknown_id) {
        const current = this.read(row.unknown_id);
        const similarity = current ? cosine(s.vector, centroidOf(current.sum)) : 1;
        return { id: row.unknown_id, created: false, similarity, replayed: true };
      }
      const entry = this.cached(s.modelId);
      const versionBefore = this.cachedVersion;
      const nearest = nearestCentroid(s.vector, entry.centroids);
      const joined =
        nearest && joinsIdentity(nearest.similarity, threshold)
          ? this.read(entry.ids[nearest.index]!)
          : undefined;
      const next = joined ? joinIdentity(joined, s) : startIdentity(unknownIdFor(s.id), s);
      this.write(next);
      this.db.prepare("UPDATE sightings SET unknown_id = ? WHERE id = ?").run(next.id, s.id);
      this.bump();
      // Our own change: patch the cache instead of reloading it (unless someone else's is pending too).
      if (versionBefore === this.cachedVersion) {
        if (joined) entry.centroids[nearest!.index] = centroidOf(next.sum);
        else {
          entry.ids.push(next.id);
          entry.centroids.push(centroidOf(next.sum));
        }
        this.cachedVersion = this.version();
      }
      return joined
        ? { id: next.id, created: false, similarity: nearest!.similarity, replayed: false }
        : { id: next.id, created: true, similarity: 1, replayed: false };
    });
  }

  async getUnknown(id: string) {
    return this.read(id);
  }

  async listUnknowns(q: UnknownQuery): Promise<Page<UnknownIdentity>> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (q.cameras && q.cameras.length > 0) {
      where.push(
        `EXISTS (SELECT 1 FROM json_each(unknowns.cameras) WHERE value IN (${q.cameras.map(() => "?").join(", ")}))`,
      );
      params.push(...q.cameras);
    }
    if (q.seenSince !== undefined) {
      where.push("last_seen >= ?");
      params.push(q.seenSince);
    }
    if (q.seenUntil !== undefined) {
      where.push("first_seen <= ?");
      params.push(q.seenUntil);
    }
    return keysetPage(
      this.db,
      { from: `SELECT ${COLUMNS} FROM unknowns`, tsColumn: "last_seen", where, params, request: q },
      (r: Row) => publicIdentity(toState(r)),
      identityPosition,
    );
  }

  async patchUnknown(id: string, patch: UnknownPatch) {
    const set = (["name", "promotedTo"] as const).filter((k) => patch[k] !== undefined);
    if (set.length === 0) return this.read(id);
    return this.tx(() => {
      const column = { name: "name", promotedTo: "promoted_to" } as const;
      const changed = this.db
        .prepare(`UPDATE unknowns SET ${set.map((k) => `${column[k]} = @${k}`).join(", ")} WHERE id = @id`)
        .run({ id, ...Object.fromEntries(set.map((k) => [k, patch[k]])) }).changes;
      if (changed === 0) return undefined;
      this.bump();
      return this.read(id);
    });
  }

  async commitMerge(intoId: string, fromId: string) {
    // Read inside the write transaction: an assignment to either identity commits before or after, never between.
    return this.tx(() => {
      const { into, from } = checkMerge(intoId, fromId, this.read(intoId), this.read(fromId));
      const merged = mergeIdentities(into, from);
      this.write(merged);
      this.db.prepare("UPDATE sightings SET unknown_id = ? WHERE unknown_id = ?").run(intoId, fromId);
      this.db.prepare("DELETE FROM unknowns WHERE id = ?").run(fromId);
      this.bump();
      return merged;
    });
  }

  async commitSplit(sourceId: string, createdId: string, sightingIds: string[]) {
    return this.tx(() => {
      const columns = "id, camera_id, start_ts, end_ts, model_id, quality, unknown_id";
      type SightingRow = {
        id: string;
        camera_id: string;
        start_ts: number;
        end_ts: number;
        model_id: string;
        quality: string;
        unknown_id: string | null;
      };
      const member = (r: SightingRow) => ({
        id: r.id,
        cameraId: r.camera_id,
        startTs: r.start_ts,
        endTs: r.end_ts,
        modelId: r.model_id,
        quality: JSON.parse(r.quality) as Member["quality"],
        unknownId: r.unknown_id,
      });
      const one = this.db.prepare(`SELECT ${columns}, vector FROM sightings WHERE id = ?`);
      const found = new Map<string, Member & { unknownId: string | null }>();
      for (const id of sightingIds) {
        const r = one.get(id) as (SightingRow & { vector: Buffer }) | undefined;
        if (r) found.set(id, { ...member(r), vector: bytesToVector(r.vector) });
      }
      const remaining = (
        this.db
          .prepare(`SELECT ${columns} FROM sightings WHERE unknown_id = ?`)
          .all(sourceId) as SightingRow[]
      ).map(member);
      const split = splitIdentity(this.read(sourceId), sourceId, createdId, sightingIds, found, remaining);
      this.write(split.source);
      this.write(split.created);
      const relabel = this.db.prepare("UPDATE sightings SET unknown_id = ? WHERE id = ? AND unknown_id = ?");
      for (const id of sightingIds) relabel.run(createdId, id, sourceId);
      this.bump();
      return split;
    });
  }

  async deleteUnknown(id: string) {
    return this.tx(() => {
      const removed = this.db.prepare("DELETE FROM unknowns WHERE id = ?").run(id).changes > 0;
      if (removed) {
        this.db.prepare("UPDATE sightings SET unknown_id = NULL WHERE unknown_id = ?").run(id);
        this.bump();
      }
      return removed;
    });
  }

  async purgeUnknownsBefore(ts: number) {
    return this.tx(() => {
      this.db
        .prepare(
          "UPDATE sightings SET unknown_id = NULL WHERE unknown_id IN (SELECT id FROM unknowns WHERE last_seen < ?)",
        )
        .run(ts);
      const removed = this.db.prepare("DELETE FROM unknowns WHERE last_seen < ?").run(ts).changes;
      if (removed > 0) this.bump();
      return removed;
    });
  }
}
