import { QdrantClient } from "@qdrant/js-client-rest";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../lib/config/index.ts";
import { l2normalize } from "../lib/geometry/index.ts";
import { pointId } from "../lib/store/qdrant-store.ts";
import { layoutOfKind, type QdrantLayout } from "../lib/store/qdrant-layout.ts";
import { useQdrant } from "./qdrant-helpers.ts";
import { sightingOf } from "./helpers.ts";

/**
 * Collections made for failure (store.qdrantCollections): laid out as configured when Vigil creates them, and an
 * existing collection laid out otherwise is reported, not changed. Against real servers: one node, and a
 * three-node cluster on 127.0.0.1 for copies on other nodes.
 */
const vec = (seed: number) =>
  l2normalize(new Float32Array(8).map((_, k) => Math.sin(seed * 12.9898 + k * 78.233)));
const sighting = (id: string) => sightingOf({ id, endTs: 2000, vector: vec(id.length) });

async function layoutOf(client: QdrantClient, collection: string): Promise<QdrantLayout> {
  const p = (await client.getCollection(collection)).config.params;
  return {
    shardNumber: p.shard_number!,
    replicationFactor: p.replication_factor!,
    writeConsistencyFactor: p.write_consistency_factor!,
  };
}

describe("store.qdrantCollections", () => {
  it("defaults to one shard, one copy, one acknowledgement; refuses more acknowledgements than copies", () => {
    expect(loadConfig({ env: {} }).store.qdrantCollections).toEqual({
      shardNumber: 1,
      replicationFactor: 1,
      writeConsistencyFactor: 1,
    });
    const env = {
      VIGIL_STORE__QDRANT_COLLECTIONS__REPLICATION_FACTOR: "2",
      VIGIL_STORE__QDRANT_COLLECTIONS__WRITE_CONSISTENCY_FACTOR: "3",
    };
    expect(() => loadConfig({ env })).toThrow(/writeConsistencyFactor cannot exceed replicationFactor/);
  });

  it("takes a kind of collection's own settings over the common ones, and holds each kind to the same rule", () => {
    const layouts = loadConfig({
      env: {},
      overrides: {
        "store.qdrantCollections": {
          replicationFactor: 2,
          byKind: { sightings: { shardNumber: 6 }, state: { replicationFactor: 3 } },
        },
      },
    }).store.qdrantCollections;
    expect(layoutOfKind(layouts, "sightings")).toEqual({
      shardNumber: 6,
      replicationFactor: 2,
      writeConsistencyFactor: 1,
    });
    expect(layoutOfKind(layouts, "state")).toMatchObject({ shardNumber: 1, replicationFactor: 3 });
    expect(layoutOfKind(layouts, "watchlist")).toEqual({
      shardNumber: 1,
      replicationFactor: 2,
      writeConsistencyFactor: 1,
    });
    expect(() =>
      loadConfig({
        env: {},
        overrides: { "store.qdrantCollections": { byKind: { sightings: { writeConsistencyFactor: 2 } } } },
      }),
    ).toThrow(/writeConsistencyFactor cannot exceed replicationFactor \(sightings\)/);
    expect(() =>
      loadConfig({ env: {}, overrides: { "store.qdrantCollections": { byKind: { sighting: {} } } } }),
    ).toThrow(/byKind/);
  });
});

const single = useQdrant("collection layouts on one node");
describe.skipIf(!!single.skip)("collection layout on one Qdrant node", () => {
  it("creates collections as configured, and warns (not changes) where an existing one differs", async () => {
    const layout = { shardNumber: 2, replicationFactor: 1, writeConsistencyFactor: 1 };
    const first = await single.open({ store: { layout, warn: (m) => expect.fail(m) } });
    await first.store.addSightings([sighting("s1")]);
    const collection = `${first.prefix}_sightings__m1`;
    expect(await layoutOf(first.raw, collection)).toEqual(layout);

    // A kind's own layout: sightings spread over more shards than the rest.
    const byKind = await single.open({
      store: {
        layout: { ...layout, shardNumber: 1, byKind: { sightings: { shardNumber: 3 } } },
        warn: (m) => expect.fail(m),
      },
    });
    await byKind.store.addSightings([sighting("s1")]);
    await byKind.store.upsertPerson({ id: "ann", name: "Ann", watchlistId: "default" });
    await byKind.store.addFace({
      faceId: "ann:1",
      personId: "ann",
      modelId: "m1",
      vector: vec(1),
      source: "1",
    });
    expect((await layoutOf(byKind.raw, `${byKind.prefix}_sightings__m1`)).shardNumber).toBe(3);
    expect((await layoutOf(byKind.raw, `${byKind.prefix}_watchlist__m1`)).shardNumber).toBe(1);

    // Another process, configured for one shard, on the same collections: it says so and writes on.
    const warnings: string[] = [];
    const other = await single.open({ prefix: first.prefix, store: { warn: (m) => warnings.push(m) } });
    await other.store.addSightings([sighting("s22")]);
    expect(warnings).toEqual([
      expect.stringContaining(
        `Qdrant collection ${collection} has shard_number 2, replication_factor 1, write_consistency_factor 1; ` +
          "store.qdrantCollections asks for shard_number 1, replication_factor 1, write_consistency_factor 1",
      ),
    ]);
    expect(await layoutOf(first.raw, collection)).toEqual(layout);
    expect(await other.store.count()).toBe(2);
  });

  it("a collection another process creates between the check and the create is used, not a failed write", async () => {
    const { store, proxy, raw, prefix } = await single.open({ store: { warn: (m) => expect.fail(m) } });
    // What two match replicas meeting a new model at once do: Qdrant refuses the second create.
    proxy.beforeNext("PUT /collections/{collection_name}", async () => {
      await raw.createCollection(`${prefix}_sightings__m1`, {
        vectors: { size: 8, distance: "Cosine", on_disk: true },
        quantization_config: { scalar: { type: "int8", quantile: 0.99, always_ram: true } },
      });
    });
    await store.addSightings([sighting("s1")]);
    expect(proxy.calls).toContain("PUT /collections/{collection_name}");
    expect(await store.getSighting("s1")).toMatchObject({ id: "s1" });
  });

  it("says when a shard has fewer copies than its replication factor (one node cannot hold two)", async () => {
    const warnings: string[] = [];
    const layout = { shardNumber: 1, replicationFactor: 2, writeConsistencyFactor: 1 };
    const { store, prefix } = await single.open({ store: { layout, warn: (m) => warnings.push(m) } });
    await store.addSightings([sighting("s1")]);
    expect(warnings).toEqual([
      expect.stringMatching(
        new RegExp(
          `^Qdrant collection ${prefix}_sightings__m1 has replication_factor 2 but only 1 copy of some shard`,
        ),
      ),
    ]);
    expect(await store.count()).toBe(1);
  });

  it("makes sightings int8-quantized (floats on disk, rescored), and names an older, unquantized one", async () => {
    const { store, raw, prefix, proxy } = await single.open({ store: { warn: (m) => expect.fail(m) } });
    const sightings = Array.from({ length: 40 }, (_, i) => sighting(`q${i}`));
    await store.addSightings(sightings);
    const collection = `${prefix}_sightings__m1`;
    const { config } = await raw.getCollection(collection);
    expect(config.quantization_config).toMatchObject({
      scalar: { type: "int8", quantile: 0.99, always_ram: true },
    });
    expect(config.params.vectors).toMatchObject({ on_disk: true });
    // Rescored from the originals: the scores are the exact cosines, not int8 approximations.
    const query = vec(3);
    const hits = await store.search({ modelId: "m1", vector: query, top: 5 });
    expect(hits).toHaveLength(5);
    for (const h of hits) {
      const v = sightings.find((s) => s.id === h.sighting.id)!.vector;
      expect(h.score).toBeCloseTo(
        v.reduce((sum, x, k) => sum + x * query[k]!, 0),
        5,
      );
    }
    expect(proxy.calls).toContain("POST /collections/{collection_name}/points/query");

    // A sightings collection an older Vigil made, without quantization: said, not changed.
    const older = `${prefix}_sightings__m2`;
    await raw.createCollection(older, { vectors: { size: 8, distance: "Cosine" } });
    const warnings: string[] = [];
    const other = await single.open({ prefix, store: { warn: (m) => warnings.push(m) } });
    await other.store.addSightings([sightingOf({ id: "old", endTs: 2000, vector: vec(5), modelId: "m2" })]);
    expect(warnings).toEqual([expect.stringContaining(`Qdrant collection ${older} has no quantization`)]);
    expect((await raw.getCollection(older)).config.quantization_config).toBeFalsy();
  });

  it("sent only requests the official schema accepts", () => {
    expect(single.violations()).toEqual([]);
  });
});

const cluster = useQdrant("collection layouts on a three-node cluster", { nodes: 3 });
describe.skipIf(!!cluster.skip)("collection layout on a three-node Qdrant cluster", () => {
  it("three shards with two copies each, on different nodes; what one node took, another serves", async () => {
    const layout = { shardNumber: 3, replicationFactor: 2, writeConsistencyFactor: 1 };
    const { store, raw, prefix } = await cluster.open({ store: { layout, warn: (m) => expect.fail(m) } });
    await store.addSightings(Array.from({ length: 30 }, (_, i) => sighting(`s${i}`)));
    const collection = `${prefix}_sightings__m1`;
    expect(await layoutOf(raw, collection)).toEqual(layout);
    const info = await raw.collectionClusterInfo(collection);
    const peers = new Map<number, Set<number>>();
    for (const s of info.local_shards) peers.set(s.shard_id, new Set([info.peer_id]));
    for (const s of info.remote_shards)
      peers.set(s.shard_id, (peers.get(s.shard_id) ?? new Set()).add(s.peer_id));
    expect([...peers.keys()].sort()).toEqual([0, 1, 2]);
    for (const [shard, on] of peers) expect(on.size, `copies of shard ${shard}`).toBe(2);
    for (const node of cluster.server()!.nodes.slice(1)) {
      const elsewhere = new QdrantClient({ url: node.url, checkCompatibility: false });
      expect((await elsewhere.count(collection, { exact: true })).count).toBe(30);
      const [row] = await elsewhere.retrieve(collection, { ids: [pointId("s7")], with_payload: true });
      expect(row?.payload?.id).toBe("s7");
    }
    expect(cluster.violations()).toEqual([]);
  });
});
