import type pg from "pg";
import { bytesToVector, vectorToBytes } from "../../contracts/index.ts";
import { cosine } from "../../geometry/index.ts";
import { centroidOf, joinsIdentity } from "../../identities/clusterer.ts";
import {
  checkMerge,
  joinIdentity,
  mergeIdentities,
  sightingsOfUnknown,
  splitIdentity,
  startIdentity,
  unknownIdFor,
  type Member,
} from "../../identities/identity.ts";
import { InvalidInputError } from "../errors.ts";
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
} from "../identity-store.ts";
import { keysetResult, keysetStatement } from "../keyset.ts";
import type { Page } from "../paging.ts";
import { labelSightings, relabelSightings, storedLabel, type QdrantAccess } from "../qdrant-identities.ts";
import { pointId } from "../qdrant-store.ts";
import { SqlParams } from "../sql-params.ts";
import type { RecordsPool } from "./records-pool.ts";

/** Sightings an identity remembers having counted: a replay after a crash before labelling finds its own here. */
const RECENT_KEPT = 64;
/** Operator changes applied (`merge:<from>`, `split:<created>`), so a retry after a crash completes, not repeats. */
const APPLIED_KEPT = 64;
/** Centroids a join looks at, nearest first: the first that is still an identity (and not merging away) decides. */
const CANDIDATES = 4;
const PURGE_BATCH = 500;

const COLUMNS =
  "id, model_id, name, first_seen, last_seen, count, cameras, best, sum, promoted_to, recent, applied, merging_into, version";

interface Row {
  id: string;
  model_id: string;
  name: string | null;
  first_seen: string;
  last_seen: string;
  count: number;
  cameras: string[];
  /** JSON: `IdentityState["best"]`. */
  best: string;
  sum: Buffer;
  promoted_to: string | null;
  recent: string[];
  applied: string[];
  merging_into: string | null;
  version: string;
}

const toState = (r: Row): IdentityState => ({
  id: r.id,
  name: r.name,
  modelId: r.model_id,
  firstSeen: Number(r.first_seen),
  lastSeen: Number(r.last_seen),
  count: r.count,
  cameras: r.cameras,
  best: JSON.parse(r.best) as IdentityState["best"],
  sum: bytesToVector(r.sum),
  promotedTo: r.promoted_to,
});

const kept = (list: string[], max: number) => [...new Set(list)].slice(-max);

/**
 * Unknown identities with their records in PostgreSQL and their centroids in Qdrant (`store.records.kind:
 * postgres`): the row is the identity (counts, span, cameras, photos, the sum of its members' vectors); the point in
 * the model's `unknowns` collection is its index entry, found by vector search and keyed by the same id.
 *
 * Each change is one transaction on the identity's row (`FOR UPDATE`), so two replicas joining sightings to one
 * identity, or an operator renaming or merging it meanwhile, never lose one another's change. The centroid is
 * written after the row, carrying the row's version, and only over an older version (`update_filter`), so the
 * index converges on the newest row whatever order writers land in; an index entry left behind by a deletion is
 * skipped (and removed) when a search meets it, and an entry a crash kept from being written is rewritten when the
 * sighting is replayed. Sightings' labels live in Qdrant beside their vectors and are written after the identity,
 * as in the Qdrant-only store: `recent` lets a replay find the identity that already counted it.
 */
export class PostgresIdentities implements IdentityStore {
  constructor(
    private readonly db: RecordsPool,
    private readonly q: QdrantAccess,
  ) {}

  private async read(id: string, client?: pg.PoolClient, lock = false): Promise<Row | undefined> {
    const sql = `SELECT ${COLUMNS} FROM unknowns WHERE id = $1${lock ? " FOR UPDATE" : ""}`;
    const rows = client ? (await client.query<Row>(sql, [id])).rows : await this.db.rows<Row>(sql, [id]);
    return rows[0];
  }

  /**
   * Writes the identity's row (new or replacing); returns its new version: the clock in microseconds, or one more
   * than the row had, so it grows with every write of the row, across a restore and a re-creation of the same id.
   */
  private async write(
    client: pg.PoolClient,
    s: IdentityState,
    extra: { recent: string[]; applied: string[]; mergingInto?: string | null },
  ): Promise<string> {
    const { rows } = await client.query<{ version: string }>(
      `INSERT INTO unknowns (${COLUMNS})
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
         (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)
       ON CONFLICT (id) DO UPDATE SET model_id = excluded.model_id, name = excluded.name,
         first_seen = excluded.first_seen, last_seen = excluded.last_seen, count = excluded.count,
         cameras = excluded.cameras, best = excluded.best, sum = excluded.sum, promoted_to = excluded.promoted_to,
         recent = excluded.recent, applied = excluded.applied, merging_into = excluded.merging_into,
         version = GREATEST(unknowns.version + 1, excluded.version)
       RETURNING version`,
      [
        s.id,
        s.modelId,
        s.name,
        s.firstSeen,
        s.lastSeen,
        s.count,
        s.cameras,
        JSON.stringify(s.best),
        vectorToBytes(s.sum),
        s.promotedTo,
        kept(extra.recent, RECENT_KEPT),
        kept(extra.applied, APPLIED_KEPT),
        extra.mergingInto ?? null,
      ],
    );
    return rows[0]!.version;
  }

  /** The identity's centroid in its model's collection, unless a newer version of it is there already. */
  private async index(s: IdentityState, version: string) {
    const col = this.q.name("unknowns", s.modelId);
    await this.q.ensure(col, s.sum.length, { id: "keyword", version: "integer" });
    await this.q.client.upsert(col, {
      wait: true,
      points: [
        {
          id: pointId(s.id),
          vector: Array.from(centroidOf(s.sum)),
          payload: { id: s.id, version: Number(version) },
        },
      ],
      // Entries written before the records database (no version) are replaced too.
      update_filter: {
        should: [{ is_empty: { key: "version" } }, { key: "version", range: { lt: Number(version) } }],
      },
    });
  }

  private async unindex(ids: { id: string; model_id: string }[]) {
    const byModel = new Map<string, string[]>();
    for (const { id, model_id } of ids)
      byModel.set(model_id, [...(byModel.get(model_id) ?? []), pointId(id)]);
    for (const [modelId, points] of byModel) {
      const col = this.q.name("unknowns", modelId);
      if ((await this.q.client.collectionExists(col)).exists)
        await this.q.client.delete(col, { wait: true, points });
    }
  }

  async assignUnknown(s: SightingWithVector, threshold: number): Promise<UnknownAssignment> {
    const label = await storedLabel(this.q, s);
    if (label) {
      const current = await this.read(label);
      const similarity = current ? cosine(s.vector, centroidOf(bytesToVector(current.sum))) : 1;
      return { id: label, created: false, similarity, replayed: true };
    }
    // Counted before a crash kept its label from being written: label it (and mend the index) only.
    const [counted] = await this.db.rows<Row>(
      `SELECT ${COLUMNS} FROM unknowns WHERE recent @> ARRAY[$1::text]`,
      [s.id],
    );
    if (counted) {
      await this.index(toState(counted), counted.version);
      await labelSightings(this.q, s.modelId, [s.id], counted.id);
      const similarity = cosine(s.vector, centroidOf(bytesToVector(counted.sum)));
      return { id: counted.id, created: false, similarity, replayed: true };
    }
    const col = this.q.name("unknowns", s.modelId);
    const candidates = (await this.q.client.collectionExists(col)).exists
      ? (
          await this.q.client.query(col, {
            query: Array.from(s.vector),
            limit: CANDIDATES,
            with_payload: { include: ["id"] },
          })
        ).points.map((p) => String(p.payload!.id))
      : [];
    const orphans: string[] = [];
    const outcome = await this.db.transaction(async (client) => {
      for (const id of candidates) {
        const row = await this.read(id, client, true);
        if (!row) {
          orphans.push(id);
          continue;
        }
        // Being merged away: it takes no more sightings.
        if (row.merging_into !== null) continue;
        const state = toState(row);
        // The row's centroid, not the index's: the index may lag a write still landing.
        const similarity = cosine(s.vector, centroidOf(state.sum));
        if (!joinsIdentity(similarity, threshold)) break;
        const next = joinIdentity(state, s);
        const version = await this.write(client, next, {
          recent: [...row.recent, s.id],
          applied: row.applied,
        });
        return { next, version, result: { id: next.id, created: false, similarity, replayed: false } };
      }
      const next = startIdentity(unknownIdFor(s.id), s);
      const version = await this.write(client, next, { recent: [s.id], applied: [] });
      return { next, version, result: { id: next.id, created: true, similarity: 1, replayed: false } };
    });
    await this.index(outcome.next, outcome.version);
    await labelSightings(this.q, s.modelId, [s.id], outcome.result.id);
    await this.dropOrphans(s.modelId, orphans);
    return outcome.result;
  }

  /** Index entries whose identity is gone (a write that landed after its deletion), removed if still gone. */
  private async dropOrphans(modelId: string, ids: string[]) {
    if (ids.length === 0) return;
    const live = await this.db.rows<{ id: string }>("SELECT id FROM unknowns WHERE id = ANY($1::text[])", [
      ids,
    ]);
    const gone = ids.filter((id) => !live.some((r) => r.id === id));
    await this.unindex(gone.map((id) => ({ id, model_id: modelId })));
  }

  /**
   * Rows for identities kept before the records database (`vigil records adopt`), those not here yet; returns how
   * many were new. Their points stay as they are: the payload-era point already holds the centroid under the
   * identity's id, which is all this store reads of it, and has no version, so the identity's next write
   * replaces it (until then, a matcher still on the old config goes on reading it).
   */
  async adopt(states: IdentityState[]): Promise<number> {
    let added = 0;
    for (const s of states)
      await this.db.transaction(async (client) => {
        if (await this.read(s.id, client, true)) return;
        await this.write(client, s, { recent: [], applied: [] });
        added++;
      });
    return added;
  }

  async getUnknown(id: string) {
    const row = await this.read(id);
    return row && toState(row);
  }

  async listUnknowns(q: UnknownQuery): Promise<Page<UnknownIdentity>> {
    const params = new SqlParams("$n");
    const where: string[] = [];
    if (q.cameras && q.cameras.length > 0) where.push(`cameras && ${params.add(q.cameras)}::text[]`);
    if (q.seenSince !== undefined) where.push(`last_seen >= ${params.add(q.seenSince)}`);
    if (q.seenUntil !== undefined) where.push(`first_seen <= ${params.add(q.seenUntil)}`);
    const { sql, limit } = keysetStatement(
      { from: `SELECT ${COLUMNS} FROM unknowns`, tsColumn: "last_seen", where, request: q },
      params,
    );
    return keysetResult(
      await this.db.rows<Row>(sql, params.values),
      limit,
      (r) => publicIdentity(toState(r)),
      identityPosition,
    );
  }

  async patchUnknown(id: string, patch: UnknownPatch) {
    const params = new SqlParams("$n", [id]);
    const set: string[] = [];
    if (patch.name !== undefined) set.push(`name = ${params.add(patch.name)}`);
    if (patch.promotedTo !== undefined) set.push(`promoted_to = ${params.add(patch.promotedTo)}`);
    if (set.length === 0) return this.getUnknown(id);
    // Only these columns: a sighting that joined since the caller read the identity keeps counting.
    const [row] = await this.db.rows<Row>(
      `UPDATE unknowns SET ${set.join(", ")} WHERE id = $1 RETURNING ${COLUMNS}`,
      params.values,
    );
    return row && toState(row);
  }

  async commitMerge(intoId: string, fromId: string) {
    const key = `merge:${fromId}`;
    const folded = await this.db.transaction(async (client) => {
      // Both rows locked, in one order (two merges of the same pair either way round cannot deadlock).
      await client.query("SELECT id FROM unknowns WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE", [
        [intoId, fromId],
      ]);
      const into = await this.read(intoId, client);
      const from = await this.read(fromId, client);
      if (into && from && intoId !== fromId && into.applied.includes(key))
        return { merged: toState(into), version: into.version, from: from }; // a retry: finish the move below
      checkMerge(intoId, fromId, into && toState(into), from && toState(from));
      if (from!.merging_into !== null && from!.merging_into !== intoId)
        throw new InvalidInputError(`${fromId} is being merged into ${from!.merging_into}`);
      const merged = mergeIdentities(toState(into!), toState(from!));
      const version = await this.write(client, merged, {
        recent: [...into!.recent, ...from!.recent],
        applied: [...into!.applied, key],
      });
      // Marked, not deleted, until its sightings are relabelled: a crash before that is finished by a retry.
      await client.query("UPDATE unknowns SET merging_into = $2 WHERE id = $1", [fromId, intoId]);
      return { merged, version, from: from! };
    });
    await this.index(folded.merged, folded.version);
    await relabelSightings(this.q, [fromId], intoId);
    await this.db.rows("DELETE FROM unknowns WHERE id = $1", [fromId]);
    await this.unindex([folded.from]);
    return (await this.getUnknown(intoId)) ?? folded.merged;
  }

  async commitSplit(sourceId: string, createdId: string, sightingIds: string[]) {
    const key = `split:${createdId}`;
    const found = new Map<string, Member & { unknownId?: string | null }>();
    for (const id of sightingIds) {
      const s = await this.q.sightings.getSighting(id);
      if (s) found.set(id, s);
    }
    const remaining = await sightingsOfUnknown(this.q.sightings, sourceId);
    const split = await this.db.transaction(async (client) => {
      const source = await this.read(sourceId, client, true);
      const created = await this.read(createdId, client);
      if (source && created && source.applied.includes(key))
        return {
          source: toState(source),
          created: toState(created),
          versions: [source.version, created.version],
        };
      const next = splitIdentity(
        source && toState(source),
        sourceId,
        createdId,
        sightingIds,
        found,
        remaining,
      );
      const createdVersion = await this.write(client, next.created, { recent: sightingIds, applied: [] });
      const sourceVersion = await this.write(client, next.source, {
        recent: source!.recent.filter((id) => !found.has(id)),
        applied: [...source!.applied, key],
      });
      return { ...next, versions: [sourceVersion, createdVersion] };
    });
    await this.index(split.source, split.versions[0]!);
    await this.index(split.created, split.versions[1]!);
    // Only sightings still the source's: a merge may have moved one since.
    await this.q.client.setPayload(this.q.name("sightings", split.created.modelId), {
      wait: true,
      filter: {
        must: [{ has_id: sightingIds.map(pointId) }, { key: "unknownId", match: { value: sourceId } }],
      },
      payload: { unknownId: createdId },
    });
    return { source: split.source, created: split.created };
  }

  async deleteUnknown(id: string) {
    const row = await this.read(id);
    if (!row) return false;
    // Labels first (as a purge): a crash in between leaves an identity to delete again, never labels of nothing.
    await relabelSightings(this.q, [id], null);
    await this.db.rows("DELETE FROM unknowns WHERE id = $1", [id]);
    await this.unindex([row]);
    return true;
  }

  async purgeUnknownsBefore(ts: number) {
    let removed = 0;
    for (;;) {
      const rows = await this.db.rows<{ id: string; model_id: string }>(
        "SELECT id, model_id FROM unknowns WHERE last_seen < $1 ORDER BY id LIMIT $2",
        [ts, PURGE_BATCH],
      );
      if (rows.length === 0) return removed;
      await relabelSightings(
        this.q,
        rows.map((r) => r.id),
        null,
      );
      await this.db.rows("DELETE FROM unknowns WHERE id = ANY($1::text[])", [rows.map((r) => r.id)]);
      await this.unindex(rows);
      removed += rows.length;
    }
  }
}
