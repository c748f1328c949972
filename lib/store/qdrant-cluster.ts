/**
 * What an operator does for a Qdrant cluster after a node's disk is lost, through Qdrant's own REST API. A node
 * that restarts with its storage is caught up by Qdrant itself (its copies, marked dead while it was away, are
 * recovered from the others). A node restarted empty is a new peer: Qdrant refuses it while the lost peer still
 * holds its URI and copies, and gives a new peer no copies by itself. So: forget the lost peer (`forgetPeer`,
 * its copies with it), start the node empty, and copy every shard that has fewer copies than its collection's
 * replication factor onto peers that lack one (`restoreReplication`).
 */

export interface ShardCopy {
  shard: number;
  peer: number;
  state: string;
}

export interface CollectionCopies {
  replicationFactor: number;
  copies: ShardCopy[];
  /** Shard transfers in progress. */
  transfers: number;
}

/** A node of the cluster to ask: its REST URL and the API key, when the cluster wants one. */
export interface QdrantNodeRef {
  url: string;
  apiKey?: string;
}
const ref = (node: string | QdrantNodeRef): QdrantNodeRef =>
  typeof node === "string" ? { url: node } : node;

async function qdrant<T>(
  node: string | QdrantNodeRef,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const { url: base, apiKey } = ref(node);
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { "content-type": "application/json", ...(apiKey ? { "api-key": apiKey } : {}) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  if (!res.ok)
    throw new Error(`Qdrant ${method} ${path} at ${base}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return (JSON.parse(text) as { result: T }).result;
}

/** This node's peer id (`GET /cluster`). */
export async function peerId(url: string | QdrantNodeRef): Promise<number> {
  return (await qdrant<{ peer_id: number }>(url, "GET", "/cluster")).peer_id;
}

/** Every copy of every shard of a collection, as the node at `url` sees them, and its replication factor. */
export async function collectionCopies(
  url: string | QdrantNodeRef,
  collection: string,
): Promise<CollectionCopies> {
  const info = await qdrant<{
    peer_id: number;
    local_shards: { shard_id: number; state: string }[];
    remote_shards: { shard_id: number; peer_id: number; state: string }[];
    shard_transfers?: unknown[];
  }>(url, "GET", `/collections/${encodeURIComponent(collection)}/cluster`);
  const params = await qdrant<{ config: { params: { replication_factor?: number } } }>(
    url,
    "GET",
    `/collections/${encodeURIComponent(collection)}`,
  );
  return {
    replicationFactor: params.config.params.replication_factor ?? 1,
    copies: [
      ...info.local_shards.map((s) => ({ shard: s.shard_id, peer: info.peer_id, state: s.state })),
      ...info.remote_shards.map((s) => ({ shard: s.shard_id, peer: s.peer_id, state: s.state })),
    ],
    transfers: info.shard_transfers?.length ?? 0,
  };
}

/**
 * Removes a lost peer from the cluster, dropping its copies (`force`): until then a node restarted empty on the
 * same address is refused. Ask a node that is up.
 */
export async function forgetPeer(url: string | QdrantNodeRef, peer: number): Promise<void> {
  await qdrant(url, "DELETE", `/cluster/peer/${peer}?force=true`);
}

/**
 * Starts a copy of every shard of `collections` that has fewer active copies than the collection's replication
 * factor, from an active copy onto a peer that holds none (the emptiest first), and returns how many it started.
 * Copies already on their way count as copies. Qdrant moves the data in the background: `collectionCopies` tells
 * when every copy is `Active`.
 */
export async function restoreReplication(
  url: string | QdrantNodeRef,
  collections: string[],
): Promise<number> {
  const peers = Object.keys(
    (await qdrant<{ peers: Record<string, unknown> }>(url, "GET", "/cluster")).peers,
  ).map(Number);
  let started = 0;
  for (const collection of collections) {
    const { replicationFactor, copies } = await collectionCopies(url, collection);
    const load = new Map(peers.map((p) => [p, copies.filter((c) => c.peer === p).length]));
    for (const shard of [...new Set(copies.map((c) => c.shard))].sort((a, b) => a - b)) {
      const of = copies.filter((c) => c.shard === shard);
      const source = of.find((c) => c.state === "Active");
      if (!source) continue;
      let missing = replicationFactor - of.filter((c) => c.state !== "Dead").length;
      const candidates = peers
        .filter((p) => !of.some((c) => c.peer === p))
        .sort((a, b) => load.get(a)! - load.get(b)!);
      for (const target of candidates) {
        if (missing <= 0) break;
        await qdrant(url, "POST", `/collections/${encodeURIComponent(collection)}/cluster`, {
          replicate_shard: { shard_id: shard, from_peer_id: source.peer, to_peer_id: target },
        });
        load.set(target, load.get(target)! + 1);
        missing--;
        started++;
      }
    }
  }
  return started;
}

/** The collections whose names start with `prefix` (a deployment's: `<store.qdrantPrefix>_`). */
export async function collectionsOf(url: string | QdrantNodeRef, prefix: string): Promise<string[]> {
  const { collections } = await qdrant<{ collections: { name: string }[] }>(url, "GET", "/collections");
  return collections
    .map((c) => c.name)
    .filter((n) => n.startsWith(prefix))
    .sort();
}

/** The peers of the cluster and the Raft leader, as one node sees them. */
export async function clusterPeers(
  url: string | QdrantNodeRef,
): Promise<{ self: number; leader: number | null; peers: { id: number; uri: string }[] }> {
  const c = await qdrant<{
    peer_id: number;
    peers: Record<string, { uri: string }>;
    raft_info?: { leader?: number | null };
  }>(url, "GET", "/cluster");
  return {
    self: c.peer_id,
    leader: c.raft_info?.leader ?? null,
    peers: Object.entries(c.peers).map(([id, p]) => ({ id: Number(id), uri: p.uri })),
  };
}

/** The first of `urls` that answers: a command run while a node is down asks another. */
export async function liveNode(urls: string[], apiKey?: string): Promise<QdrantNodeRef> {
  const errors: string[] = [];
  for (const url of urls) {
    try {
      await peerId({ url, apiKey });
      return { url, apiKey };
    } catch (err) {
      errors.push(`${url}: ${(err as Error).message}`);
    }
  }
  throw new Error(
    `no Qdrant node answered GET /cluster (distributed mode off, or all away): ${errors.join("; ")}`,
  );
}
