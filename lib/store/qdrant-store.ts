import { QdrantClient } from "@qdrant/js-client-rest";
import { createHash } from "node:crypto";
import {
  flattenSighting,
  type Sighting,
  type SightingHit,
  type SightingQuery,
  type SightingRecord,
  type SightingStore,
} from "./sighting-store.ts";
import type { EnrolledFace, Exclusion, Person, WatchlistMatch, WatchlistStore } from "./watchlist-store.ts";

/** Qdrant point ids must be UUIDs or integers: a name-based UUID keeps our string ids deterministic (idempotent). */
export function pointId(id: string): string {
  const h = createHash("sha256").update(id).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const safe = (modelId: string) => modelId.replace(/[^A-Za-z0-9_-]/g, "_");
const UPSERT_BATCH = 256;

type Payload = Record<string, unknown>;
type FilterCondition = Record<string, unknown>;

/**
 * The scale-out store: collections per model id for watchlist faces, exclusions and sightings (vectors of
 * different models never meet), payload indexes on camera, time and person, filtered search, batched upserts with
 * deterministic point ids. People and per-watchlist thresholds live in small metadata collections.
 */
export class QdrantStore implements WatchlistStore, SightingStore {
  private readonly client: QdrantClient;
  private ready = new Map<string, Promise<void>>();
  private people: Map<string, Person> | undefined;

  constructor(
    url: string,
    private readonly prefix = "vigil",
    apiKey?: string,
  ) {
    this.client = new QdrantClient({ url, apiKey, checkCompatibility: false });
  }

  /** The REST client holds no connection to release; here for the common store shape. */
  close() {}

  private name(kind: string, modelId?: string) {
    return modelId ? `${this.prefix}_${kind}__${safe(modelId)}` : `${this.prefix}_${kind}`;
  }

  /** Creates a collection (and its payload indexes) once per process; safe when it already exists. */
  private ensure(collection: string, size: number, indexes: Record<string, "keyword" | "integer">) {
    let pending = this.ready.get(collection);
    if (!pending) {
      pending = (async () => {
        const { exists } = await this.client.collectionExists(collection);
        if (!exists)
          await this.client.createCollection(collection, { vectors: { size, distance: "Cosine" } });
        for (const [field, schema] of Object.entries(indexes)) {
          await this.client.createPayloadIndex(collection, {
            field_name: field,
            field_schema: schema,
            wait: true,
          });
        }
      })();
      pending.catch(() => this.ready.delete(collection));
      this.ready.set(collection, pending);
    }
    return pending;
  }

  private async collections(kind: string): Promise<string[]> {
    const { collections } = await this.client.getCollections();
    const prefix = `${this.prefix}_${kind}__`;
    return collections.map((c) => c.name).filter((n) => n.startsWith(prefix));
  }

  private async upsert(collection: string, points: { id: string; vector: number[]; payload: Payload }[]) {
    for (let i = 0; i < points.length; i += UPSERT_BATCH) {
      await this.client.upsert(collection, { wait: true, points: points.slice(i, i + UPSERT_BATCH) });
    }
  }

  private async scrollAll(collection: string, filter?: { must: FilterCondition[] }, exclude: string[] = []) {
    const out: { id: string | number; payload?: Payload | null }[] = [];
    let offset: string | number | undefined | null = undefined;
    do {
      const page = await this.client.scroll(collection, {
        filter,
        limit: 1000,
        with_payload: exclude.length ? { exclude } : true,
        with_vector: false,
        ...(offset !== undefined && offset !== null ? { offset } : {}),
      });
      out.push(...(page.points as typeof out));
      offset = page.next_page_offset as string | number | null | undefined;
    } while (offset !== undefined && offset !== null);
    return out;
  }

  // ---- watchlist ----

  private async peopleMap(): Promise<Map<string, Person>> {
    if (!this.people) {
      const col = this.name("people");
      await this.ensure(col, 1, {});
      const rows = await this.scrollAll(col);
      this.people = new Map(rows.map((r) => [String(r.payload!.id), r.payload as unknown as Person]));
    }
    return this.people;
  }

  async upsertPerson(person: Person) {
    const col = this.name("people");
    await this.ensure(col, 1, {});
    await this.upsert(col, [{ id: pointId(person.id), vector: [1], payload: { ...person } }]);
    (await this.peopleMap()).set(person.id, { ...person });
  }

  async addFace(face: EnrolledFace) {
    if (!(await this.peopleMap()).has(face.personId)) throw new Error(`unknown person ${face.personId}`);
    const col = this.name("watchlist", face.modelId);
    await this.ensure(col, face.vector.length, { personId: "keyword" });
    await this.upsert(col, [
      {
        id: pointId(face.faceId),
        vector: Array.from(face.vector),
        payload: { faceId: face.faceId, personId: face.personId, source: face.source },
      },
    ]);
  }

  async removePerson(personId: string) {
    const people = await this.peopleMap();
    if (!people.has(personId)) return false;
    const byPerson = { must: [{ key: "personId", match: { value: personId } }] };
    for (const col of [...(await this.collections("watchlist")), ...(await this.collections("exclusions"))]) {
      await this.client.delete(col, { wait: true, filter: byPerson });
    }
    await this.client.delete(this.name("people"), { wait: true, points: [pointId(personId)] });
    people.delete(personId);
    return true;
  }

  async removeFace(faceId: string) {
    let removed = false;
    for (const col of await this.collections("watchlist")) {
      const found = await this.client.retrieve(col, { ids: [pointId(faceId)], with_payload: false });
      if (found.length === 0) continue;
      await this.client.delete(col, { wait: true, points: [pointId(faceId)] });
      removed = true;
    }
    return removed;
  }

  async listPeople() {
    const counts = new Map<string, number>();
    for (const col of await this.collections("watchlist")) {
      for (const r of await this.scrollAll(col)) {
        const id = String(r.payload!.personId);
        counts.set(id, (counts.get(id) ?? 0) + 1);
      }
    }
    return [...(await this.peopleMap()).values()]
      .sort((a, b) => a.id.localeCompare(b.id))
      .map((p) => ({ ...p, faces: counts.get(p.id) ?? 0 }));
  }

  async match(modelId: string, vectors: Float32Array[], k: number): Promise<WatchlistMatch[][]> {
    const col = this.name("watchlist", modelId);
    if (vectors.length === 0 || !(await this.client.collectionExists(col)).exists)
      return vectors.map(() => []);
    const people = await this.peopleMap();
    const results = await this.client.queryBatch(col, {
      searches: vectors.map((v) => ({ query: Array.from(v), limit: k * 8, with_payload: true })),
    });
    return results.map((r) => {
      const best = new Map<string, WatchlistMatch>();
      for (const p of r.points) {
        const person = people.get(String(p.payload!.personId));
        if (person && !best.has(person.id))
          best.set(person.id, { person, faceId: String(p.payload!.faceId), score: p.score });
      }
      return [...best.values()].slice(0, k);
    });
  }

  async addExclusion(e: Exclusion) {
    const col = this.name("exclusions", e.modelId);
    await this.ensure(col, e.vector.length, { personId: "keyword" });
    await this.upsert(col, [
      {
        id: pointId(e.id),
        vector: Array.from(e.vector),
        payload: { id: e.id, personId: e.personId, note: e.note },
      },
    ]);
  }

  async exclusionScore(personId: string, modelId: string, vector: Float32Array) {
    const col = this.name("exclusions", modelId);
    if (!(await this.client.collectionExists(col)).exists) return -1;
    const { points } = await this.client.query(col, {
      query: Array.from(vector),
      filter: { must: [{ key: "personId", match: { value: personId } }] },
      limit: 1,
    });
    return points[0]?.score ?? -1;
  }

  async setWatchlistThreshold(watchlistId: string, threshold: number | null) {
    const col = this.name("watchlists");
    await this.ensure(col, 1, {});
    await this.upsert(col, [
      { id: pointId(watchlistId), vector: [1], payload: { id: watchlistId, threshold } },
    ]);
  }

  async watchlistThreshold(watchlistId: string) {
    const col = this.name("watchlists");
    await this.ensure(col, 1, {});
    const [row] = await this.client.retrieve(col, { ids: [pointId(watchlistId)], with_payload: true });
    const t = row?.payload?.threshold;
    return typeof t === "number" ? t : undefined;
  }

  // ---- sightings ----

  async addSightings(sightings: Sighting[]) {
    const byModel = new Map<string, Sighting[]>();
    for (const s of sightings) byModel.set(s.modelId, [...(byModel.get(s.modelId) ?? []), s]);
    for (const [modelId, list] of byModel) {
      const col = this.name("sightings", modelId);
      await this.ensure(col, list[0]!.vector.length, {
        cameraId: "keyword",
        startTs: "integer",
        endTs: "integer",
        personId: "keyword",
      });
      await this.upsert(
        col,
        list.map((s) => ({
          id: pointId(s.id),
          vector: Array.from(s.vector),
          payload: {
            ...flattenSighting(s),
            // Qdrant payloads are JSON; the crop is a small JPEG thumbnail.
            crop: Buffer.from(s.crop).toString("base64"),
          },
        })),
      );
    }
  }

  async search(q: SightingQuery): Promise<SightingHit[]> {
    const col = this.name("sightings", q.modelId);
    if (!(await this.client.collectionExists(col)).exists) return [];
    const must: FilterCondition[] = [];
    if (q.cameras && q.cameras.length > 0) must.push({ key: "cameraId", match: { any: q.cameras } });
    if (q.since !== undefined || q.until !== undefined) {
      must.push({
        key: "startTs",
        range: {
          ...(q.since !== undefined ? { gte: q.since } : {}),
          ...(q.until !== undefined ? { lte: q.until } : {}),
        },
      });
    }
    const { points } = await this.client.query(col, {
      query: Array.from(q.vector),
      ...(must.length ? { filter: { must } } : {}),
      limit: q.top,
      with_payload: { exclude: ["crop"] },
    });
    return points.map((p) => ({ sighting: toRecord(p.payload!), score: p.score }));
  }

  async byPerson(personId: string, range: { since?: number; until?: number } = {}) {
    const out: SightingRecord[] = [];
    const filter = {
      must: [
        { key: "personId", match: { value: personId } },
        { key: "startTs", range: { gte: range.since ?? 0, lte: range.until ?? Number.MAX_SAFE_INTEGER } },
      ],
    };
    for (const col of await this.collections("sightings")) {
      for (const r of await this.scrollAll(col, filter, ["crop"])) out.push(toRecord(r.payload!));
    }
    return out.sort((a, b) => a.startTs - b.startTs);
  }

  async crop(id: string) {
    for (const col of await this.collections("sightings")) {
      const [row] = await this.client.retrieve(col, {
        ids: [pointId(id)],
        with_payload: { include: ["crop"] },
      });
      if (row?.payload?.crop) return new Uint8Array(Buffer.from(String(row.payload.crop), "base64"));
    }
    return undefined;
  }

  async purgeBefore(ts: number) {
    let removed = 0;
    const filter = { must: [{ key: "endTs", range: { lt: ts } }] };
    for (const col of await this.collections("sightings")) {
      removed += (await this.client.count(col, { filter, exact: true })).count;
      await this.client.delete(col, { wait: true, filter });
    }
    return removed;
  }

  async count() {
    let n = 0;
    for (const col of await this.collections("sightings"))
      n += (await this.client.count(col, { exact: true })).count;
    return n;
  }
}

function toRecord(p: Payload): SightingRecord {
  return {
    id: String(p.id),
    trackId: String(p.trackId),
    cameraId: String(p.cameraId),
    startTs: Number(p.startTs),
    endTs: Number(p.endTs),
    faces: Number(p.faces),
    modelId: String(p.modelId),
    quality: p.quality as SightingRecord["quality"],
    match: p.personId
      ? { personId: String(p.personId), name: String(p.personName ?? ""), score: Number(p.score) }
      : null,
  };
}
