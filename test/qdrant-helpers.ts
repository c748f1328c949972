import { QdrantClient } from "@qdrant/js-client-rest";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { afterAll, beforeAll } from "vitest";
import { FolderCropStore, type CropStore } from "../lib/store/crop-store.ts";
import { QdrantStore } from "../lib/store/qdrant-store.ts";
import { QdrantApi } from "../lib/testing/qdrant/openapi.ts";
import { QdrantProxy } from "../lib/testing/qdrant/proxy.ts";
import {
  QdrantServer,
  qdrantUnavailableReason,
  type QdrantServerOptions,
} from "../lib/testing/qdrant/server.ts";
import { tempDir } from "./helpers.ts";
import { collectionCopies } from "../lib/store/qdrant-cluster.ts";

/** A store on the file's server, seen through a checking proxy of its own. */
export interface LiveQdrant {
  store: QdrantStore;
  /** The collection prefix the store was given: unique to this store. */
  prefix: string;
  /** A client that bypasses the proxy: another process, or an older Vigil, writing behind the store's back. */
  raw: QdrantClient;
  proxy: QdrantProxy;
}

/**
 * A test file's real Qdrant: started in beforeAll (one server per file, so a suite stays fast), given back in
 * afterAll. Each store it opens gets collections of its own (a unique prefix) and a proxy that holds every request
 * and reply to the official OpenAPI document and lets a test cut a call short (see QdrantProxy). QDRANT_URL (and
 * QDRANT_API_KEY) names an outside server instead, where the collections made are deleted afterwards. Without
 * either, `skip` says why and the caller skips its live cases (the reason is printed once).
 */
export function useQdrant(label: string, options: QdrantServerOptions = {}) {
  // A cluster is always started here: an outside server is one node, as far as a test can tell.
  const outside = options.nodes === 3 ? undefined : process.env.QDRANT_URL;
  const apiKey = outside ? process.env.QDRANT_API_KEY : undefined;
  const skip = outside ? undefined : qdrantUnavailableReason(options.binary);
  if (skip) console.log(`skipping ${label} against a real Qdrant: ${skip}`);
  const run = `t${Date.now().toString(36)}${randomBytes(2).toString("hex")}`;
  let server: QdrantServer | undefined;
  let url = "";
  let api: QdrantApi | undefined;
  let count = 0;
  const proxies: QdrantProxy[] = [];
  const crops: CropStore[] = [];
  if (!skip) {
    beforeAll(async () => {
      api = new QdrantApi();
      if (outside) url = outside;
      else {
        server = await QdrantServer.start(options);
        url = server.url;
      }
    });
    afterAll(async () => {
      for (const p of proxies) await p.stop();
      for (const c of crops) c.close();
      if (server) await server.destroy();
      else if (outside) {
        const client = new QdrantClient({ url: outside, apiKey, checkCompatibility: false });
        for (const { name } of (await client.getCollections()).collections)
          if (name.startsWith(`${run}_`)) await client.deleteCollection(name);
      }
    });
  }
  /** A proxy of its own and a fresh collection prefix, for code that opens its store from config. */
  const endpoint = async () => {
    const proxy = await new QdrantProxy(url, api!).start();
    proxies.push(proxy);
    return { url: proxy.url, apiKey, prefix: `${run}_${count++}`, proxy };
  };
  /**
   * A store with crops in a fresh folder unless `crops` are given, on collections of its own unless `prefix`
   * names another store's (a second process on the same collections).
   */
  const open = async (
    options: {
      crops?: CropStore;
      prefix?: string;
      store?: ConstructorParameters<typeof QdrantStore>[4];
    } = {},
  ): Promise<LiveQdrant> => {
    const { proxy, prefix: fresh } = await endpoint();
    const prefix = options.prefix ?? fresh;
    const crop = options.crops ?? folderCrops();
    crops.push(crop);
    return {
      store: new QdrantStore(proxy.url, prefix, apiKey, crop, options.store),
      prefix,
      raw: new QdrantClient({ url, apiKey, checkCompatibility: false }),
      proxy,
    };
  };
  return {
    /** Why the live cases skip here, or undefined when they run. */
    skip,
    /** The server's (or the outside server's) own URL, without a proxy. */
    url: () => url,
    /** The server started here: undefined with QDRANT_URL. */
    server: () => server,
    endpoint,
    open,
    /** Every violation of the OpenAPI document any proxy of this file saw. */
    violations: () => proxies.flatMap((p) => p.violations),
    calls: () => new Set(proxies.flatMap((p) => p.calls)),
  };
}

/** A fresh crops folder. */
export const folderCrops = () => new FolderCropStore(path.join(tempDir("vigil-crops-"), "crops"));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Until every copy of every collection is Active, as `url` sees them, and no transfer is left. */
export async function caughtUp(url: string, collections: string[], timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    try {
      const views = await Promise.all(collections.map((c) => collectionCopies(url, c)));
      const behind = views.flatMap((v, i) =>
        v.copies
          .filter((c) => c.state !== "Active")
          .map((c) => `${collections[i]}#${c.shard}@${c.peer}:${c.state}`),
      );
      const short = views.flatMap((v, i) =>
        [...new Set(v.copies.map((c) => c.shard))]
          .filter((s) => v.copies.filter((c) => c.shard === s).length < v.replicationFactor)
          .map((s) => `${collections[i]}#${s}: too few copies`),
      );
      const moving = views.reduce((n, v) => n + v.transfers, 0);
      if (behind.length === 0 && short.length === 0 && moving === 0) return;
      last = [...behind, ...short, `${moving} transfers`].join(", ");
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`the cluster did not catch up in ${timeoutMs} ms: ${last}`);
    await sleep(250);
  }
}
