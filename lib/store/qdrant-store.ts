import type { QdrantClient } from "@qdrant/js-client-rest";
import { createHash } from "node:crypto";
import { bytesToVector, vectorToBytes } from "../contracts/index.ts";
import type { StoreRecords } from "./postgres/store-records.ts";
import { SchemaTooNewError } from "./postgres/migrations.ts";
import {
  kindOfCollection,
  layoutOfKind,
  ONE_NODE,
  type CollectionKind,
  type QdrantLayout,
  type QdrantLayouts,
} from "./qdrant-layout.ts";
import { isTransient } from "../runtime/errors.ts";
import type { Box } from "../geometry/index.ts";
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
import type { StateStore } from "./state-store.ts";
import { cropKey, putCrops, type CropStore } from "./crop-store.ts";
import { QdrantIdentities, type QdrantAccess } from "./qdrant-identities.ts";
import type { IdentityStore } from "./identity-store.ts";
import { checkQdrantVersion } from "./qdrant-version.ts";
import { QdrantNodes, type QdrantRetry } from "./qdrant-nodes.ts";
import {
  checkLimit,
  decodeCursor,
  encodeCursor,
  newestFirst,
  type CursorPosition,
  type Page,
} from "./paging.ts";

/** Qdrant point ids must be UUIDs or integers: a name-based UUID keeps our string ids deterministic (idempotent). */
export function pointId(id: string): string {
  const h = createHash("sha256").update(id).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const safe = (modelId: string) => modelId.replace(/[^A-Za-z0-9_-]/g, "_");
const UPSERT_BATCH = 256;
/** Points whose crops (and the crop store's objects) one retention step deletes. */
const PURGE_BATCH = 1000;
/**
 * Payload fields too big to send back in listings. Crops live in the crop store now; points written before that
 * still carry one, which these exclusions keep out of every answer.
 */
const BULKY = ["crop", "vector"];
const OLD_CROP = ["crop"];

const LAYOUT_FIELDS = {
  shardNumber: "shard_number",
  replicationFactor: "replication_factor",
  writeConsistencyFactor: "write_consistency_factor",
} as const;
const describeLayout = (l: QdrantLayout) =>
  Object.entries(LAYOUT_FIELDS)
    .map(([k, field]) => `${field} ${l[k as keyof QdrantLayout]}`)
    .join(", ");

/**
 * Sightings are the one collection that grows to millions (history search): as the embedded store does, their
 * vectors are searched as int8 (a quarter of float32's memory and bandwidth, kept in RAM) with the float originals
 * on disk, and the best candidates, oversampled, are rescored exactly from the originals. The 0.99 quantile keeps a
 * rare outlying component from stretching the int8 range. `bench search --store qdrant` measures what this gives.
 */
const SIGHTING_VECTORS = { on_disk: true } as const;
const SIGHTING_QUANTIZATION = { scalar: { type: "int8", quantile: 0.99, always_ram: true } } as const;
/** A beam wider than the default keeps recall@10 at a million points; oversampled candidates are rescored. */
const SIGHTING_SEARCH = { hnsw_ef: 128, quantization: { rescore: true, oversampling: 2 } } as const;

export type Payload = Record<string, unknown>;
export type FilterCondition = Record<string, unknown>;
export type IndexKind = "keyword" | "integer" | "bool";
type PayloadSelection = true | { include: string[] } | { exclude: string[] };

export { COLLECTION_KINDS, type CollectionKind, type QdrantLayout } from "./qdrant-layout.ts";

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");
const unb64 = (text: unknown) => new Uint8Array(Buffer.from(String(text), "base64"));

/**
 * The scale-out store: collections per model id for watchlist faces, exclusions and sightings (vectors of
 * different models never meet), payload indexes on camera, time and person, filtered search, batched upserts with
 * deterministic point ids. People, per-watchlist thresholds, alerts and state live in small collections with a
 * one-dimensional placeholder vector (accepted by every Qdrant version, unlike vector-less collections).
 *
 * Crops are not in payloads: they go to a `CropStore` (a folder or S3) under keys made from the record's id. A
 * crop is written before its point, so a point never lacks its crop and the redelivered write of a failed batch
 * overwrites the crop it left; retention deletes crops before their points, so a purge cut short is finished by
 * the next one instead of leaving crops that no record leads to. Points written before crops moved out still
 * carry theirs in the payload, and are read from there.
 *
 * Nothing about the watchlist is cached in the process: every match asks Qdrant, so a person enrolled or removed
 * by another process counts from the next batch on.
 */
export class QdrantStore implements WatchlistStore, SightingStore, AlertStore, StateStore {
  private readonly client: QdrantClient;
  /** The nodes the client fails over between, and what its calls met (retries, failovers). */
  readonly nodes: QdrantNodes;
  /**
   * Unknown identities: a centroid collection per model beside the sightings, with the identities' records as its
   * payloads, or in the records database when there is one.
   */
  readonly unknowns: IdentityStore;
  private ready = new Map<string, Promise<void>>();
  /** The server's version, checked once (see checkServer). */
  private server: Promise<void> | undefined;
  private readonly warn: (message: string) => void;
  private readonly layouts: QdrantLayouts;
  /** Alerts, checkpoints, people and thresholds kept in the records database; undefined: payload collections here. */
  private readonly records: StoreRecords | undefined;

  /** `url`: one server, or several nodes of one cluster to fail over between (qdrant-nodes.ts). */
  constructor(
    url: string | string[],
    private readonly prefix: string,
    apiKey: string | undefined,
    private readonly crops: CropStore,
    options: {
      warn?: (message: string) => void;
      layout?: QdrantLayouts;
      retry?: QdrantRetry;
      /** Records (alerts, checkpoints, people, thresholds) in the records database, not payloads here. */
      records?: StoreRecords;
    } = {},
  ) {
    this.warn = options.warn ?? ((m) => process.stderr.write(m));
    this.records = options.records;
    this.layouts = options.layout ?? ONE_NODE;
    this.nodes = new QdrantNodes(typeof url === "string" ? [url] : url, apiKey, options.retry, this.warn);
    this.client = this.nodes.client;
    // Only what the identities need of this store: its client, names and collection helpers, and its sightings.
    const access: QdrantAccess = {
      client: this.client,
      name: (kind, modelId) => this.name(kind, modelId),
      ensure: (collection, size, indexes) => this.ensure(collection, size, indexes),
      collections: (kind) => this.collections(kind),
      upsert: (collection, points) => this.upsert(collection, points),
      orderedPage: (collection, must, key, limit, cursor) =>
        this.orderedPage(collection, must, key, limit, cursor),
      sightings: this,
    };
    this.unknowns = this.records ? this.records.identities(access) : new QdrantIdentities(access);
  }

  /** The REST client holds no connection to release; the crop store may. */
  close() {
    this.crops.close();
    void this.records?.close().catch(() => {});
  }

  /**
   * Connects to the records database and migrates it, as a process starts: a schema newer than this code is
   * refused here (SchemaTooNewError) rather than met by the first record. A database that is away only delays
   * this to the first use (readiness says so meanwhile): the process starts, and goes on once it is back.
   */
  async checkRecords(): Promise<void> {
    try {
      await this.records?.open();
    } catch (err) {
      if (err instanceof SchemaTooNewError || !isTransient(err)) throw err;
    }
  }

  /** Whether the records database answers (readiness); true without one. */
  async recordsHealthy(): Promise<boolean> {
    return this.records ? this.records.healthy() : true;
  }

  /** Nothing to forget: the watchlist is read from Qdrant on every match. */
  invalidate() {}

  /** Fails with a clear error when the crop store cannot be used at all (no bucket, credentials refused). */
  checkCrops(): Promise<void> {
    return this.crops.check();
  }

  /**
   * Fails with a clear error when the server is older than QDRANT_MIN_VERSION (qdrant-version.ts). Asked once per
   * store, before its first collection is used (and before crops are written for points that could not be), so a
   * store never writes to a server that would ignore its conditional writes; a failed ask is asked again.
   */
  checkServer(): Promise<void> {
    if (!this.server) {
      this.server = checkQdrantVersion(this.client, this.nodes.urls.join(", "), this.warn);
      this.server.catch(() => (this.server = undefined));
    }
    return this.server;
  }

  private name(kind: CollectionKind, modelId?: string) {
    return modelId ? `${this.prefix}_${kind}__${safe(modelId)}` : `${this.prefix}_${kind}`;
  }

  /**
   * Creates a collection (and its payload indexes) once per process, laid out as configured; safe when it already
   * exists, and then its layout is compared with the configured one.
   */
  private ensure(
    collection: string,
    size: number,
    indexes: Record<string, IndexKind>,
    options: { quantized?: boolean } = {},
  ) {
    let pending = this.ready.get(collection);
    if (!pending) {
      pending = (async () => {
        await this.checkServer();
        const { exists } = await this.client.collectionExists(collection);
        if (!exists) await this.create(collection, size, options.quantized === true);
        await this.checkLayout(collection, options.quantized === true);
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

  /** How `collection` is to be laid out: the configured layout, with its kind's own settings over it. */
  private layoutOf(collection: string): QdrantLayout {
    return layoutOfKind(this.layouts, kindOfCollection(this.prefix, collection));
  }

  private async create(collection: string, size: number, quantized: boolean) {
    const layout = this.layoutOf(collection);
    try {
      await this.client.createCollection(collection, {
        vectors: { size, distance: "Cosine", ...(quantized ? SIGHTING_VECTORS : {}) },
        ...(quantized ? { quantization_config: SIGHTING_QUANTIZATION } : {}),
        shard_number: layout.shardNumber,
        replication_factor: layout.replicationFactor,
        write_consistency_factor: layout.writeConsistencyFactor,
      });
    } catch (err) {
      // Another process (a second match replica, the API) made it since we asked: Qdrant refuses a second
      // create ("already exists"), which must not fail this one's first write.
      if (!(await this.client.collectionExists(collection)).exists) throw err;
    }
  }

  /**
   * Warns, naming the collection and both layouts, when a collection is laid out otherwise than configured: made
   * before with other settings (Qdrant cannot reshard a collection in place), or holding fewer copies of a shard
   * than its replication factor (a single node, or fewer nodes than copies, keeps what it can and says nothing).
   * A silent difference would leave an operator believing in copies that are not there. Nothing is changed.
   */
  private async checkLayout(collection: string, quantized: boolean) {
    const { config } = await this.client.getCollection(collection);
    const params = config.params;
    if (quantized && !config.quantization_config)
      this.warn(
        `Qdrant collection ${collection} has no quantization (made by an older Vigil): searches over it read ` +
          `float vectors, four times the memory of int8. Add it with PATCH /collections/${collection} ` +
          `{"quantization_config": ${JSON.stringify(SIGHTING_QUANTIZATION)}}.\n`,
      );
    const actual: QdrantLayout = {
      shardNumber: params.shard_number ?? 1,
      replicationFactor: params.replication_factor ?? 1,
      writeConsistencyFactor: params.write_consistency_factor ?? 1,
    };
    const wanted = this.layoutOf(collection);
    const differs = (Object.keys(LAYOUT_FIELDS) as (keyof QdrantLayout)[]).some(
      (k) => actual[k] !== wanted[k],
    );
    if (differs)
      this.warn(
        `Qdrant collection ${collection} has ${describeLayout(actual)}; store.qdrantCollections asks for ` +
          `${describeLayout(wanted)}. Vigil leaves an existing collection as it is: change its replication ` +
          `with PATCH /collections/${collection} and replicate its shards, or re-create it for another shard_number.\n`,
      );
    if (actual.replicationFactor < 2) return;
    const cluster = await this.client.collectionClusterInfo(collection);
    const copies = new Map<number, number>();
    for (const shard of [...cluster.local_shards, ...cluster.remote_shards])
      copies.set(shard.shard_id, (copies.get(shard.shard_id) ?? 0) + 1);
    const fewest = Math.min(...copies.values());
    if (fewest < actual.replicationFactor)
      this.warn(
        `Qdrant collection ${collection} has replication_factor ${actual.replicationFactor} but only ${fewest} ` +
          `cop${fewest === 1 ? "y" : "ies"} of some shard: the cluster has fewer nodes than copies (or is not in ` +
          `distributed mode), so losing a node loses data.\n`,
      );
  }

  private async collections(kind: string): Promise<string[]> {
    await this.checkServer();
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

  private async retrieveOne(collection: string, id: string, withPayload: PayloadSelection = true) {
    const [row] = await this.client.retrieve(collection, { ids: [pointId(id)], with_payload: withPayload });
    return row?.payload ?? undefined;
  }

  /**
   * One page, newest first by the integer payload field `key` then by our id, strictly after `cursor`. Qdrant
   * orders by the field but not by our id within equal values, and refuses `offset` with `order_by`, so a page
   * edge that falls inside a run of equal times is completed by fetching that run whole.
   */
  private async orderedPage(
    collection: string,
    must: FilterCondition[],
    key: string,
    limit: number,
    cursor: CursorPosition | undefined,
  ): Promise<{ items: Payload[]; more: boolean }> {
    const pos = (p: Payload) => ({ ts: Number(p[key]), id: String(p.id) });
    const out: Payload[] = [];
    const run = async (conditions: FilterCondition[], ts: number) =>
      (
        await this.scrollAll(
          collection,
          { must: [...conditions, { key, range: { gte: ts, lte: ts } }] },
          BULKY,
        )
      ).map((r) => r.payload!);
    if (cursor) out.push(...(await run(must, cursor.ts)).filter((p) => pos(p).id < cursor.id));
    const older = cursor ? [...must, { key, range: { lt: cursor.ts } }] : must;
    // One more than the page needs tells whether another page follows.
    const need = limit + 1 - out.length;
    if (need > 0) {
      const page = await this.client.scroll(collection, {
        ...(older.length ? { filter: { must: older } } : {}),
        limit: need,
        with_payload: { exclude: BULKY },
        with_vector: false,
        order_by: { key, direction: "desc" },
      });
      const got = page.points.map((p) => p.payload!);
      if (got.length === need) {
        const edge = Number(got.at(-1)![key]);
        out.push(...got.filter((p) => Number(p[key]) > edge), ...(await run(older, edge)));
      } else out.push(...got);
    }
    out.sort((a, b) => newestFirst(pos(a), pos(b)));
    return { items: out.slice(0, limit), more: out.length > limit };
  }

  // ---- watchlist ----

  private async peopleById(ids: string[]): Promise<Map<string, Person>> {
    if (this.records) return this.records.people.byId(ids);
    if (ids.length === 0) return new Map();
    const col = this.name("people");
    await this.ensure(col, 1, {});
    const rows = await this.client.retrieve(col, { ids: ids.map(pointId), with_payload: true });
    return new Map(rows.map((r) => [String(r.payload!.id), toPerson(r.payload!)]));
  }

  private async allPeople(): Promise<Person[]> {
    if (this.records) return this.records.people.all();
    const col = this.name("people");
    await this.ensure(col, 1, {});
    return (await this.scrollAll(col)).map((r) => toPerson(r.payload!));
  }

  async upsertPerson(person: Person) {
    if (this.records) return this.records.people.upsert(person);
    const col = this.name("people");
    await this.ensure(col, 1, {});
    await this.upsert(col, [{ id: pointId(person.id), vector: [1], payload: { ...person } }]);
  }

  async addFace(face: EnrolledFace) {
    if (!(await this.peopleById([face.personId])).has(face.personId))
      throw new Error(`unknown person ${face.personId}`);
    const col = this.name("watchlist", face.modelId);
    await this.ensure(col, face.vector.length, { personId: "keyword" });
    // The crop before its point (see the class); a photo enrolled again without one must not keep the old one.
    const key = cropKey("faces", face.faceId);
    if (face.crop) await this.crops.put(key, face.crop);
    else await this.crops.delete([key]);
    const photo = {
      faceId: face.faceId,
      personId: face.personId,
      modelId: face.modelId,
      source: face.source,
      hasCrop: face.crop !== undefined,
    };
    // The record before the vector: a write cut short between them leaves a listed photo that does not match yet
    // (enrolling it again finishes it), never a face that matches but no operator can see or remove.
    if (this.records) await this.records.photos.addPhoto(photo);
    const { faceId, personId, modelId } = photo;
    await this.upsert(col, [
      {
        id: pointId(face.faceId),
        vector: Array.from(face.vector),
        payload: this.records ? { faceId, personId, modelId } : photo,
      },
    ]);
  }

  async removePerson(personId: string) {
    if (!(await this.peopleById([personId])).has(personId)) return false;
    const byPerson = { must: [{ key: "personId", match: { value: personId } }] };
    const faceCols = await this.collections("watchlist");
    // Crops before their faces (see the class): a removal cut short is finished by the next one.
    const faceIds = this.records ? (await this.records.photos.photosOf(personId)).map((p) => p.faceId) : [];
    for (const col of faceCols)
      for (const r of await this.scrollAll(col, byPerson)) faceIds.push(String(r.payload!.faceId));
    await this.crops.delete(faceIds.map((id) => cropKey("faces", id)));
    // Faces first: a match running meanwhile finds faces of nobody and skips them, never a person without faces.
    for (const col of [...faceCols, ...(await this.collections("exclusions"))]) {
      await this.client.delete(col, { wait: true, filter: byPerson });
    }
    // Its photos' and exclusions' records go with it (they cascade from the person's row).
    if (this.records) await this.records.people.remove(personId);
    else await this.client.delete(this.name("people"), { wait: true, points: [pointId(personId)] });
    return true;
  }

  async removeFace(faceId: string) {
    const recorded = this.records ? await this.records.photos.photo(faceId) : undefined;
    let removed = false;
    if (recorded) await this.crops.delete([cropKey("faces", faceId)]);
    for (const col of await this.collections("watchlist")) {
      const found = await this.client.retrieve(col, { ids: [pointId(faceId)], with_payload: false });
      if (found.length === 0) continue;
      if (!removed && !recorded) await this.crops.delete([cropKey("faces", faceId)]);
      await this.client.delete(col, { wait: true, points: [pointId(faceId)] });
      removed = true;
    }
    // The record last (see addFace): a removal cut short is finished by the next one.
    if (this.records) removed = (await this.records.photos.removePhoto(faceId)) || removed;
    return removed;
  }

  async listPeople() {
    const counts = this.records ? await this.records.photos.photoCounts() : new Map<string, number>();
    if (!this.records)
      for (const col of await this.collections("watchlist")) {
        for (const r of await this.scrollAll(col)) {
          const id = String(r.payload!.personId);
          counts.set(id, (counts.get(id) ?? 0) + 1);
        }
      }
    return (await this.allPeople())
      .sort((a, b) => a.id.localeCompare(b.id))
      .map((p) => ({ ...p, faces: counts.get(p.id) ?? 0 }));
  }

  async getPerson(personId: string) {
    const person = (await this.peopleById([personId])).get(personId);
    if (!person) return undefined;
    if (this.records) {
      const faces = (await this.records.photos.photoCounts([personId])).get(personId) ?? 0;
      return { ...person, faces };
    }
    let faces = 0;
    const filter = { must: [{ key: "personId", match: { value: personId } }] };
    for (const col of await this.collections("watchlist"))
      faces += (await this.client.count(col, { filter, exact: true })).count;
    return { ...person, faces };
  }

  async getFace(faceId: string): Promise<EnrolledPhoto | undefined> {
    if (this.records) return this.records.photos.photo(faceId);
    for (const col of await this.collections("watchlist")) {
      const p = await this.retrieveOne(col, faceId);
      if (p) return toPhoto(p, col);
    }
    return undefined;
  }

  async listFaces(personId: string): Promise<EnrolledPhoto[]> {
    if (this.records) return this.records.photos.photosOf(personId);
    const out: EnrolledPhoto[] = [];
    const filter = { must: [{ key: "personId", match: { value: personId } }] };
    for (const col of await this.collections("watchlist"))
      for (const r of await this.scrollAll(col, filter)) out.push(toPhoto(r.payload!, col));
    return out.sort((a, b) => (a.faceId < b.faceId ? -1 : a.faceId > b.faceId ? 1 : 0));
  }

  async listFaceVectors(modelId: string): Promise<FaceVector[]> {
    const col = this.name("watchlist", modelId);
    if (!(await this.client.collectionExists(col)).exists) return [];
    const out: FaceVector[] = [];
    // The vectors come back unit-length (Qdrant normalises a cosine collection's), as enrolled ones already are.
    let offset: string | number | undefined | null = undefined;
    do {
      const page = await this.client.scroll(col, {
        limit: 256,
        with_payload: { include: ["faceId", "personId", "modelId"] },
        with_vector: true,
        ...(offset !== undefined && offset !== null ? { offset } : {}),
      });
      for (const p of page.points) {
        // Two model ids that the collection name makes the same (`safe`) share it; the payload tells them apart
        // (faces enrolled before it kept the model id can only be the collection's).
        if (p.payload!.modelId !== undefined && p.payload!.modelId !== modelId) continue;
        if (!Array.isArray(p.vector))
          throw new Error(`face ${String(p.payload!.faceId)} came back without its vector`);
        out.push({
          faceId: String(p.payload!.faceId),
          personId: String(p.payload!.personId),
          vector: Float32Array.from(p.vector as number[]),
        });
      }
      offset = page.next_page_offset as string | number | null | undefined;
    } while (offset !== undefined && offset !== null);
    return out.sort((a, b) => (a.faceId < b.faceId ? -1 : a.faceId > b.faceId ? 1 : 0));
  }

  async faceCrop(faceId: string) {
    return this.crops.get(cropKey("faces", faceId));
  }

  async match(modelId: string, vectors: Float32Array[], k: number): Promise<WatchlistMatch[][]> {
    const col = this.name("watchlist", modelId);
    if (vectors.length === 0 || k <= 0 || !(await this.client.collectionExists(col)).exists)
      return vectors.map(() => []);
    const results = await this.client.queryBatch(col, {
      searches: vectors.map((v) => ({ query: Array.from(v), limit: k * 8, with_payload: true })),
    });
    // People are read with every batch (one request), so names, watchlists and removals are never stale.
    const people = await this.peopleById([
      ...new Set(results.flatMap((r) => r.points.map((p) => String(p.payload!.personId)))),
    ]);
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
    const { vector, ...record } = e;
    // The record before the vector, as a photo's (see addFace).
    if (this.records) await this.records.photos.addExclusion(record);
    const { note, ...key } = record;
    await this.upsert(col, [
      { id: pointId(e.id), vector: Array.from(vector), payload: this.records ? key : { ...key, note } },
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

  async listExclusions(personId: string): Promise<ExclusionInfo[]> {
    if (this.records) return this.records.photos.exclusionsOf(personId);
    const out: ExclusionInfo[] = [];
    const filter = { must: [{ key: "personId", match: { value: personId } }] };
    for (const col of await this.collections("exclusions"))
      for (const r of await this.scrollAll(col, filter)) {
        const p = r.payload!;
        out.push({
          id: String(p.id),
          personId: String(p.personId),
          modelId: String(p.modelId ?? col.slice(`${this.prefix}_exclusions__`.length)),
          note: String(p.note ?? ""),
        });
      }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async removeExclusion(id: string) {
    let removed = false;
    for (const col of await this.collections("exclusions")) {
      const found = await this.client.retrieve(col, { ids: [pointId(id)], with_payload: false });
      if (found.length === 0) continue;
      await this.client.delete(col, { wait: true, points: [pointId(id)] });
      removed = true;
    }
    if (this.records) removed = (await this.records.photos.removeExclusion(id)) || removed;
    return removed;
  }

  async setWatchlistThreshold(watchlistId: string, threshold: number | null) {
    if (this.records) return this.records.people.setThreshold(watchlistId, threshold);
    const col = this.name("watchlists");
    await this.ensure(col, 1, {});
    await this.upsert(col, [
      { id: pointId(watchlistId), vector: [1], payload: { id: watchlistId, threshold } },
    ]);
  }

  async watchlistThreshold(watchlistId: string) {
    if (this.records) return this.records.people.threshold(watchlistId);
    const col = this.name("watchlists");
    await this.ensure(col, 1, {});
    const t = (await this.retrieveOne(col, watchlistId))?.threshold;
    return typeof t === "number" ? t : undefined;
  }

  async listWatchlists(): Promise<WatchlistInfo[]> {
    const byId = new Map<string, WatchlistInfo>();
    for (const [id, threshold] of await this.thresholds()) byId.set(id, { id, threshold, people: 0 });
    for (const p of await this.allPeople()) {
      const w = byId.get(p.watchlistId) ?? { id: p.watchlistId, threshold: undefined, people: 0 };
      w.people++;
      byId.set(p.watchlistId, w);
    }
    return [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  private async thresholds(): Promise<Map<string, number>> {
    if (this.records) return this.records.people.thresholds();
    const col = this.name("watchlists");
    await this.ensure(col, 1, {});
    const out = new Map<string, number>();
    for (const r of await this.scrollAll(col)) {
      const t = r.payload!.threshold;
      if (typeof t === "number") out.set(String(r.payload!.id), t);
    }
    return out;
  }

  // ---- sightings ----

  async addSightings(sightings: Sighting[]) {
    await this.checkServer();
    await putCrops(
      this.crops,
      sightings.map((s) => [cropKey("sightings", s.id), s.crop]),
    );
    const byModel = new Map<string, Sighting[]>();
    for (const s of sightings) byModel.set(s.modelId, [...(byModel.get(s.modelId) ?? []), s]);
    for (const [modelId, list] of byModel) {
      const col = this.name("sightings", modelId);
      await this.ensure(
        col,
        list[0]!.vector.length,
        {
          cameraId: "keyword",
          startTs: "integer",
          endTs: "integer",
          personId: "keyword",
          unknownId: "keyword",
        },
        { quantized: true },
      );
      // Upsert replaces a whole payload: a replayed sighting keeps the unknown identity it was assigned to, and
      // the box of its best face when the replay carries none (a message from before boxes were sent).
      const kept = new Map<string, { unknownId?: unknown; box?: unknown; boxTs?: unknown }>();
      for (let i = 0; i < list.length; i += UPSERT_BATCH) {
        const rows = await this.client.retrieve(col, {
          ids: list.slice(i, i + UPSERT_BATCH).map((s) => pointId(s.id)),
          with_payload: { include: ["id", "unknownId", "box", "boxTs"] },
        });
        for (const r of rows) if (r.payload) kept.set(String(r.payload.id), r.payload);
      }
      await this.upsert(
        col,
        list.map((s) => {
          const old = kept.get(s.id);
          return {
            id: pointId(s.id),
            vector: Array.from(s.vector),
            payload: {
              ...flattenSighting(s),
              ...(old?.unknownId ? { unknownId: old.unknownId } : {}),
              ...(!s.box && old?.box ? { box: old.box, boxTs: old.boxTs ?? null } : {}),
            },
          };
        }),
      );
    }
  }

  async search(q: SightingQuery): Promise<SightingHit[]> {
    const col = this.name("sightings", q.modelId);
    if (q.top <= 0 || !(await this.client.collectionExists(col)).exists) return [];
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
      params: SIGHTING_SEARCH,
      limit: q.top,
      ...(q.offset ? { offset: q.offset } : {}),
      with_payload: { exclude: OLD_CROP },
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
      for (const r of await this.scrollAll(col, filter, OLD_CROP)) out.push(toRecord(r.payload!));
    }
    return out.sort((a, b) => a.startTs - b.startTs);
  }

  async browse(q: SightingBrowse): Promise<Page<SightingRecord>> {
    const limit = checkLimit(q.limit);
    const cursor = q.cursor ? decodeCursor(q.cursor) : undefined;
    const must: FilterCondition[] = [];
    if (q.cameras && q.cameras.length > 0) must.push({ key: "cameraId", match: { any: q.cameras } });
    if (q.personId !== undefined) must.push({ key: "personId", match: { value: q.personId } });
    if (q.unknownId !== undefined) must.push({ key: "unknownId", match: { value: q.unknownId } });
    if (q.since !== undefined || q.until !== undefined)
      must.push({
        key: "startTs",
        range: {
          ...(q.since !== undefined ? { gte: q.since } : {}),
          ...(q.until !== undefined ? { lte: q.until } : {}),
        },
      });
    // One collection per model: a page from each, merged.
    const pages = await Promise.all(
      (await this.collections("sightings")).map((col) =>
        this.orderedPage(col, must, "startTs", limit, cursor),
      ),
    );
    const merged = pages
      .flatMap((p) => p.items)
      .map(toRecord)
      .sort((a, b) => newestFirst({ ts: a.startTs, id: a.id }, { ts: b.startTs, id: b.id }));
    const items = merged.slice(0, limit);
    const more = merged.length > limit || pages.some((p) => p.more);
    const last = items.at(-1);
    return { items, nextCursor: more && last ? encodeCursor({ ts: last.startTs, id: last.id }) : null };
  }

  async getSighting(id: string) {
    for (const col of await this.collections("sightings")) {
      const [row] = await this.client.retrieve(col, {
        ids: [pointId(id)],
        with_payload: { exclude: OLD_CROP },
        with_vector: true,
      });
      if (row?.payload && Array.isArray(row.vector))
        return { ...toRecord(row.payload), vector: Float32Array.from(row.vector as number[]) };
    }
    return undefined;
  }

  async crop(id: string) {
    const crop = await this.crops.get(cropKey("sightings", id));
    if (crop) return crop;
    for (const col of await this.collections("sightings")) {
      const p = await this.retrieveOne(col, id, { include: OLD_CROP });
      if (p?.crop) return unb64(p.crop);
    }
    return undefined;
  }

  /**
   * Deletes, a page at a time, the points `filter` selects and their crops (crops first: see the class). Pages
   * keep the memory bounded however many expire at once.
   */
  private async purge(collection: string, filter: { must: FilterCondition[] }, kind: "sightings" | "alerts") {
    let removed = 0;
    for (;;) {
      const { points } = await this.client.scroll(collection, {
        filter,
        limit: PURGE_BATCH,
        with_payload: { include: ["id"] },
        with_vector: false,
      });
      if (points.length === 0) return removed;
      await this.crops.delete(points.map((p) => cropKey(kind, String(p.payload!.id))));
      await this.client.delete(collection, { wait: true, points: points.map((p) => p.id) });
      removed += points.length;
    }
  }

  async purgeBefore(ts: number) {
    let removed = 0;
    const filter = { must: [{ key: "endTs", range: { lt: ts } }] };
    for (const col of await this.collections("sightings"))
      removed += await this.purge(col, filter, "sightings");
    return removed;
  }

  async count() {
    let n = 0;
    for (const col of await this.collections("sightings"))
      n += (await this.client.count(col, { exact: true })).count;
    return n;
  }

  // ---- alerts ----

  private async alerts() {
    const col = this.name("alerts");
    await this.ensure(col, 1, {
      ts: "integer",
      cameraId: "keyword",
      personId: "keyword",
      watchlistId: "keyword",
      acknowledged: "bool",
    });
    return col;
  }

  async addAlerts(alerts: NewAlert[]) {
    if (this.records) return this.records.alerts.addAlerts(alerts);
    if (alerts.length === 0) return;
    const col = await this.alerts();
    await putCrops(
      this.crops,
      alerts.map((a) => [cropKey("alerts", a.id), a.crop]),
    );
    // Upsert replaces a whole payload: carry an acknowledgement (and a vector sent earlier) over to the replay.
    const existing = new Map<string, Payload>();
    for (let i = 0; i < alerts.length; i += UPSERT_BATCH) {
      const rows = await this.client.retrieve(col, {
        ids: alerts.slice(i, i + UPSERT_BATCH).map((a) => pointId(a.id)),
        with_payload: {
          include: ["id", "acknowledged", "ackBy", "ackTs", "ackNote", "vector", "matchedFaceId"],
        },
      });
      for (const r of rows) existing.set(String(r.payload!.id), r.payload!);
    }
    await this.upsert(
      col,
      alerts.map((a) => {
        const before = existing.get(a.id);
        return {
          id: pointId(a.id),
          vector: [1],
          payload: {
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
            box: a.box,
            vector: a.vector ? b64(vectorToBytes(a.vector)) : (before?.vector ?? null),
            matchedFaceId: a.matchedFaceId ?? before?.matchedFaceId ?? null,
            acknowledged: before?.acknowledged === true,
            ackBy: before?.ackBy ?? null,
            ackTs: before?.ackTs ?? null,
            ackNote: before?.ackNote ?? null,
          },
        };
      }),
    );
  }

  async getAlert(id: string) {
    if (this.records) return this.records.alerts.getAlert(id);
    const p = await this.retrieveOne(await this.alerts(), id, { exclude: OLD_CROP });
    if (!p) return undefined;
    return { ...toAlert(p), vector: p.vector ? bytesToVector(unb64(p.vector)) : null };
  }

  async alertVectors(ids: string[]) {
    if (this.records) return this.records.alerts.alertVectors(ids);
    const out = new Map<string, Float32Array>();
    if (ids.length === 0) return out;
    const col = await this.alerts();
    for (let i = 0; i < ids.length; i += UPSERT_BATCH) {
      const rows = await this.client.retrieve(col, {
        ids: ids.slice(i, i + UPSERT_BATCH).map(pointId),
        with_payload: { include: ["id", "vector"] },
      });
      for (const r of rows)
        if (r.payload?.vector) out.set(String(r.payload.id), bytesToVector(unb64(r.payload.vector)));
    }
    return out;
  }

  async alertCrop(id: string) {
    if (this.records) return this.records.alerts.alertCrop(id);
    const crop = await this.crops.get(cropKey("alerts", id));
    if (crop) return crop;
    const p = await this.retrieveOne(await this.alerts(), id, { include: OLD_CROP });
    return p?.crop ? unb64(p.crop) : undefined;
  }

  private alertConditions(q: AlertFilter): FilterCondition[] {
    const must: FilterCondition[] = [];
    if (q.cameras && q.cameras.length > 0) must.push({ key: "cameraId", match: { any: q.cameras } });
    if (q.personId !== undefined) must.push({ key: "personId", match: { value: q.personId } });
    if (q.watchlistId !== undefined) must.push({ key: "watchlistId", match: { value: q.watchlistId } });
    if (q.acknowledged !== undefined) must.push({ key: "acknowledged", match: { value: q.acknowledged } });
    if (q.since !== undefined || q.until !== undefined)
      must.push({
        key: "ts",
        range: {
          ...(q.since !== undefined ? { gte: q.since } : {}),
          ...(q.until !== undefined ? { lte: q.until } : {}),
        },
      });
    return must;
  }

  async listAlerts(q: AlertQuery): Promise<Page<AlertRecord>> {
    if (this.records) return this.records.alerts.listAlerts(q);
    const limit = checkLimit(q.limit);
    const cursor = q.cursor ? decodeCursor(q.cursor) : undefined;
    const { items, more } = await this.orderedPage(
      await this.alerts(),
      this.alertConditions(q),
      "ts",
      limit,
      cursor,
    );
    const alerts = items.map(toAlert);
    const last = alerts.at(-1);
    return { items: alerts, nextCursor: more && last ? encodeCursor(last) : null };
  }

  async countAlerts(filter: AlertFilter = {}) {
    if (this.records) return this.records.alerts.countAlerts(filter);
    const must = this.alertConditions(filter);
    return (
      await this.client.count(await this.alerts(), {
        ...(must.length ? { filter: { must } } : {}),
        exact: true,
      })
    ).count;
  }

  async acknowledgeAlert(id: string, ack: Acknowledgement) {
    if (this.records) return this.records.alerts.acknowledgeAlert(id, ack);
    const col = await this.alerts();
    const p = await this.retrieveOne(col, id, { exclude: BULKY });
    if (!p) return undefined;
    // Read then write: two operators acknowledging in the same instant both succeed and the later one is kept.
    if (p.acknowledged === true) return toAlert(p);
    const fields = { acknowledged: true, ackBy: ack.by, ackTs: ack.ts, ackNote: ack.note };
    await this.client.setPayload(col, { wait: true, points: [pointId(id)], payload: fields });
    return toAlert({ ...p, ...fields });
  }

  async lastAlert(personId: string, cameraId: string, beforeTs: number) {
    if (this.records) return this.records.alerts.lastAlert(personId, cameraId, beforeTs);
    const { points } = await this.client.scroll(await this.alerts(), {
      filter: {
        must: [
          { key: "personId", match: { value: personId } },
          { key: "cameraId", match: { value: cameraId } },
          { key: "ts", range: { lt: beforeTs } },
        ],
      },
      limit: 1,
      with_payload: { exclude: BULKY },
      with_vector: false,
      order_by: { key: "ts", direction: "desc" },
    });
    return points[0]?.payload ? toAlert(points[0].payload) : undefined;
  }

  async purgeAlertsBefore(ts: number) {
    if (this.records) return this.records.alerts.purgeAlertsBefore(ts);
    return this.purge(await this.alerts(), { must: [{ key: "ts", range: { lt: ts } }] }, "alerts");
  }

  // ---- state ----

  private async state() {
    const col = this.name("state");
    await this.ensure(col, 1, {});
    return col;
  }

  async saveState(key: string, bytes: Uint8Array) {
    if (this.records) return this.records.state.saveState(key, bytes);
    await this.upsert(await this.state(), [
      { id: pointId(key), vector: [1], payload: { key, value: b64(bytes), updatedTs: Date.now() } },
    ]);
  }

  async loadState(key: string) {
    if (this.records) return this.records.state.loadState(key);
    const p = await this.retrieveOne(await this.state(), key);
    return p && typeof p.value === "string" ? unb64(p.value) : undefined;
  }

  async deleteState(key: string) {
    if (this.records) return this.records.state.deleteState(key);
    const col = await this.state();
    const [row] = await this.client.retrieve(col, { ids: [pointId(key)], with_payload: false });
    if (!row) return false;
    await this.client.delete(col, { wait: true, points: [pointId(key)] });
    return true;
  }

  async stateKeys(prefix = "") {
    if (this.records) return this.records.state.stateKeys(prefix);
    // A handful of keys (one per partition): filtering here beats a keyword index.
    const rows = await this.scrollAll(await this.state(), undefined, ["value"]);
    return rows
      .map((r) => String(r.payload!.key))
      .filter((k) => k.startsWith(prefix))
      .sort();
  }
}

function toPerson(p: Payload): Person {
  return { id: String(p.id), name: String(p.name), watchlistId: String(p.watchlistId) };
}

function toPhoto(p: Payload, collection: string): EnrolledPhoto {
  return {
    faceId: String(p.faceId),
    personId: String(p.personId),
    // Faces enrolled before the model id was kept in the payload: the collection name holds it (made safe).
    modelId: String(p.modelId ?? collection.slice(collection.indexOf("__") + 2)),
    source: String(p.source ?? ""),
    // Faces enrolled before crops were kept have no flag, and no crop.
    hasCrop: p.hasCrop === true,
  };
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
    ...(p.unknownId ? { unknownId: String(p.unknownId) } : {}),
    // Sightings stored before the best face's box was kept have none.
    ...(p.box ? { box: p.box as Box } : {}),
    ...(typeof p.boxTs === "number" ? { boxTs: p.boxTs } : {}),
  };
}

function toAlert(p: Payload): AlertRecord {
  return {
    id: String(p.id),
    watchlistId: String(p.watchlistId),
    personId: String(p.personId),
    personName: String(p.personName ?? ""),
    cameraId: String(p.cameraId),
    ts: Number(p.ts),
    score: Number(p.score),
    threshold: Number(p.threshold),
    modelId: String(p.modelId),
    faceId: String(p.faceId),
    box: p.box as Box,
    matchedFaceId: p.matchedFaceId == null ? null : String(p.matchedFaceId),
    acknowledged:
      p.acknowledged === true
        ? { by: String(p.ackBy), ts: Number(p.ackTs), note: p.ackNote == null ? null : String(p.ackNote) }
        : null,
  };
}
