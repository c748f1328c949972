import type { QdrantClient } from "@qdrant/js-client-rest";
import { writeFileSync, readFileSync } from "node:fs";
import path from "node:path";
import type { Progress } from "../../telemetry/progress.ts";
import { COLLECTION_KINDS, kindOfCollection, layoutOfKind, type QdrantLayouts } from "../qdrant-layout.ts";
import { readJsonl, writeJsonl } from "./jsonl.ts";

/** A progress display for `total` points (the CLI's bar on a TTY, lines otherwise); none by default. */
export type PointsProgress = (label: string, total: number) => Progress;
const quiet: PointsProgress = () => ({ tick: () => {}, done: () => {} });

/** What a restore needs to make a collection again: its vectors, quantization and payload indexes. */
export interface CollectionMeta {
  /** The name without the deployment's prefix (`sightings__<model>`): restored under the target's prefix. */
  name: string;
  vectors: unknown;
  quantization: unknown;
  indexes: Record<string, string>;
  points: number;
}

type Point = { id: string | number; vector: unknown; payload: Record<string, unknown> | null };

const PAGE = 256;

/**
 * A deployment's collections: `<prefix>_<kind>` or `<prefix>_<kind>__<model>` for a kind the store makes, so
 * another deployment whose prefix merely starts with this one's (`vigil_test` beside `vigil`) is left out.
 */
export async function deploymentCollections(client: QdrantClient, prefix: string): Promise<string[]> {
  const kinds = new Set<string>(COLLECTION_KINDS);
  const { collections } = await client.getCollections();
  return collections
    .map((c) => c.name)
    .filter((n) => n.startsWith(`${prefix}_`) && kinds.has(n.slice(prefix.length + 1).split("__")[0]!))
    .sort();
}

async function* pointsOf(client: QdrantClient, collection: string, bar: Progress): AsyncGenerator<Point> {
  let offset: string | number | undefined;
  for (;;) {
    const page = await client.scroll(collection, {
      limit: PAGE,
      with_payload: true,
      with_vector: true,
      ...(offset === undefined ? {} : { offset }),
    });
    for (const p of page.points) yield { id: p.id, vector: p.vector, payload: p.payload ?? null };
    bar.tick(page.points.length);
    const next = page.next_page_offset;
    if (next === undefined || next === null || typeof next === "object") return;
    offset = next;
  }
}

/**
 * Every collection of the deployment, point by point with its vector and payload (`vectors/<name>.jsonl`, and
 * `<name>.json` for how to make it again). A scroll, not a Qdrant snapshot: it reads the same from one node or a
 * cluster, and loads into any later Qdrant; points written while it runs may or may not be in it.
 */
export async function dumpVectors(
  client: QdrantClient,
  prefix: string,
  dir: string,
  onCollection: (name: string, points: number) => void = () => {},
  bar: PointsProgress = quiet,
): Promise<CollectionMeta[]> {
  const metas: CollectionMeta[] = [];
  for (const collection of await deploymentCollections(client, prefix)) {
    const info = await client.getCollection(collection);
    const name = collection.slice(prefix.length + 1);
    const shown = bar(`backup ${name}`, info.points_count ?? 0);
    const points = await writeJsonl(path.join(dir, `${name}.jsonl`), pointsOf(client, collection, shown));
    shown.done();
    const indexes: Record<string, string> = {};
    for (const [field, schema] of Object.entries(info.payload_schema ?? {}))
      if (schema?.data_type) indexes[field] = schema.data_type;
    const meta: CollectionMeta = {
      name,
      vectors: info.config.params.vectors,
      quantization: info.config.quantization_config ?? null,
      indexes,
      points,
    };
    writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(meta, null, 2));
    metas.push(meta);
    onCollection(name, points);
  }
  return metas;
}

/**
 * Makes each backed-up collection again under `prefix`, laid out as `layouts` says, and loads its points. Refused
 * when the target already has any collection of that prefix: a restore never merges into live data.
 */
export async function restoreVectors(
  client: QdrantClient,
  prefix: string,
  dir: string,
  names: string[],
  /** How each collection is laid out across a cluster: the restoring deployment's choice, not the backup's. */
  layouts: QdrantLayouts,
  onCollection: (name: string, points: number) => void = () => {},
  bar: PointsProgress = quiet,
): Promise<Record<string, number>> {
  const existing = await deploymentCollections(client, prefix);
  if (existing.length > 0)
    throw new Error(
      `Qdrant already has collections of prefix "${prefix}" (${existing.slice(0, 3).join(", ")}` +
        `${existing.length > 3 ? ", …" : ""}): restore into an empty deployment`,
    );
  const counts: Record<string, number> = {};
  for (const name of names) {
    const meta = JSON.parse(readFileSync(path.join(dir, `${name}.json`), "utf8")) as CollectionMeta;
    const collection = `${prefix}_${name}`;
    const layout = layoutOfKind(layouts, kindOfCollection(prefix, collection));
    await client.createCollection(collection, {
      vectors: meta.vectors as never,
      ...(meta.quantization ? { quantization_config: meta.quantization as never } : {}),
      shard_number: layout.shardNumber,
      replication_factor: layout.replicationFactor,
      write_consistency_factor: layout.writeConsistencyFactor,
    });
    for (const [field, type] of Object.entries(meta.indexes))
      await client.createPayloadIndex(collection, {
        field_name: field,
        field_schema: type as never,
        wait: true,
      });
    let n = 0;
    const shown = bar(`restore ${name}`, meta.points);
    for await (const batch of readJsonl<Point>(path.join(dir, `${name}.jsonl`), PAGE)) {
      await client.upsert(collection, {
        wait: true,
        points: batch.map((p) => ({
          id: p.id,
          vector: p.vector as number[],
          payload: p.payload ?? undefined,
        })),
      });
      n += batch.length;
      shown.tick(batch.length);
    }
    shown.done();
    if (n !== meta.points)
      throw new Error(
        `${name}: the backup lists ${meta.points} points but its file holds ${n}: it is incomplete`,
      );
    counts[name] = n;
    onCollection(name, n);
  }
  return counts;
}
