import type { Config } from "../../lib/config/index.ts";
import {
  clusterPeers,
  collectionCopies,
  collectionsOf,
  forgetPeer,
  liveNode,
  restoreReplication,
  type QdrantNodeRef,
} from "../../lib/store/qdrant-cluster.ts";

/**
 * `vigil qdrant status | forget | repair`: the operator's side of a lost Qdrant node (lib/store/qdrant-cluster.ts
 * says why each step is needed), on the cluster `store.qdrantUrl` names and the collections of `store.qdrantPrefix`.
 */

type Print = (line: string) => void;

async function node(config: Config): Promise<QdrantNodeRef> {
  if (config.store.kind !== "qdrant" || !config.store.qdrantUrl)
    throw new Error("store.kind is not qdrant, or store.qdrantUrl is not set");
  return liveNode([config.store.qdrantUrl].flat(), config.store.qdrantApiKey);
}

export interface ShardReport {
  collection: string;
  shard: number;
  /** `peer:state` of each copy. */
  copies: string[];
  /** Fewer active copies than the collection's replication factor. */
  short: boolean;
}

/** Each shard of the deployment's collections: where its copies are and in what state. */
export async function qdrantStatus(config: Config, print: Print = console.log): Promise<ShardReport[]> {
  const at = await node(config);
  const { self, leader, peers } = await clusterPeers(at);
  print(`asked ${at.url} (peer ${self}); Raft leader ${leader ?? "none"}`);
  for (const p of peers) print(`peer ${p.id}  ${p.uri}`);
  const out: ShardReport[] = [];
  for (const collection of await collectionsOf(at, `${config.store.qdrantPrefix}_`)) {
    const { replicationFactor, copies } = await collectionCopies(at, collection);
    for (const shard of [...new Set(copies.map((c) => c.shard))].sort((a, b) => a - b)) {
      const of = copies.filter((c) => c.shard === shard);
      const short = of.filter((c) => c.state === "Active").length < replicationFactor;
      out.push({ collection, shard, copies: of.map((c) => `${c.peer}:${c.state}`), short });
      print(
        `${short ? "SHORT" : "ok   "} ${collection} shard ${shard}: ${of.map((c) => `${c.peer} ${c.state}`).join(", ")}`,
      );
    }
  }
  return out;
}

/** Drops a lost peer and its copies from the cluster, so its node can come back empty on the same address. */
export async function qdrantForget(config: Config, peer: number, print: Print = console.log): Promise<void> {
  const at = await node(config);
  if (!(await clusterPeers(at)).peers.some((p) => p.id === peer))
    throw new Error(`peer ${peer} is not in the cluster ${at.url} sees`);
  await forgetPeer(at, peer);
  print(`peer ${peer} removed from the cluster, with its copies`);
}

/** Copies every shard with too few copies onto peers without one; Qdrant moves the data in the background. */
export async function qdrantRepair(config: Config, print: Print = console.log): Promise<number> {
  const at = await node(config);
  const started = await restoreReplication(at, await collectionsOf(at, `${config.store.qdrantPrefix}_`));
  print(
    started
      ? `${started} shard cop${started === 1 ? "y" : "ies"} started; \`vigil qdrant status\` shows them Active when done`
      : "every shard has its copies",
  );
  return started;
}
