import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import { readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import {
  checkKey,
  cropKey,
  CropStoreError,
  FolderCropStore,
  putCrops,
  type CropStore,
} from "../lib/store/crop-store.ts";
import { S3CropStore, type S3CropStoreOptions } from "../lib/store/s3-crop-store.ts";
import { openCheckedStore, openCropStore } from "../lib/store/open-store.ts";
import { isTransient, TransientError } from "../lib/runtime/errors.ts";
import { loadConfig } from "../lib/config/index.ts";
import { S3Server, s3UnavailableReason } from "../lib/testing/s3/index.ts";
import { tempDir } from "./helpers.ts";
import { useQdrant } from "./qdrant-helpers.ts";

const bytes = (...b: number[]) => Uint8Array.from(b);
const list = (u: Uint8Array | undefined) => (u ? Array.from(u) : u);

describe("crop keys", () => {
  it("come from the id alone: the same id always gives the same key, different ids different keys", () => {
    expect(cropKey("sightings", "cam-1:0:7")).toBe(cropKey("sightings", "cam-1:0:7"));
    expect(cropKey("sightings", "cam-1:0:7")).toMatch(/^sightings\/[0-9a-f]{2}\/cam-1%3A0%3A7\.jpg$/);
    expect(cropKey("alerts", "cam-1:0:7")).not.toBe(cropKey("sightings", "cam-1:0:7"));
    const ids = [
      "a:b",
      "a%3Ab",
      "a/b",
      "a b",
      "A:B",
      "é",
      "e\u0301",
      "..",
      ".",
      "",
      "x".repeat(500),
      "y".repeat(500),
    ];
    const keys = ids.map((id) => cropKey("alerts", id));
    expect(new Set(keys).size).toBe(ids.length);
    for (const key of keys) {
      expect(checkKey(key)).toBe(key);
      // Every segment is a plain file name: nothing climbs out of a folder, and none is too long for a file system.
      for (const segment of key.split("/")) {
        expect(segment).not.toMatch(/^\.\.?$/);
        expect(segment.length).toBeLessThanOrEqual(200);
      }
    }
    expect(cropKey("alerts", "..")).toMatch(/\/%2E\.\.jpg$/);
    expect(cropKey("alerts", "x".repeat(500))).toMatch(/\/~[0-9a-f]{64}\.jpg$/);
  });

  it("a store refuses keys that are not plain relative paths", () => {
    for (const bad of ["", "/abs", "a//b", "../x", "a/../b", "a/./b", "a\\b", "a b"])
      expect(() => checkKey(bad), bad).toThrow(CropStoreError);
  });
});

/**
 * One behaviour for every crop store. `stored` lists what is really there (files, objects), to show that an
 * overwrite leaves one object and a delete leaves none.
 */
function cropContract(
  label: string,
  open: () => Promise<{ store: CropStore; stored: () => Promise<string[]> }>,
) {
  describe(`crop store contract: ${label}`, () => {
    it("puts, gets, overwrites in place and deletes by key", async () => {
      const { store, stored } = await open();
      await store.check();
      const a = cropKey("sightings", "cam-1:0:1");
      const b = cropKey("alerts", "alert:cam-1:0:1:ann");
      expect(await store.get(a)).toBeUndefined();
      await store.put(a, bytes(0xff, 0xd8, 1));
      await store.put(b, bytes(0xff, 0xd8, 2));
      expect(list(await store.get(a))).toEqual([0xff, 0xd8, 1]);
      expect(list(await store.get(b))).toEqual([0xff, 0xd8, 2]);
      // A replay overwrites: one object under the key, holding the newer bytes.
      await store.put(a, bytes(0xff, 0xd8, 3));
      expect(list(await store.get(a))).toEqual([0xff, 0xd8, 3]);
      expect((await stored()).sort()).toEqual([a, b].sort());
      // Deleting what is not there is fine (retention may run twice).
      await store.delete([a, cropKey("sightings", "never-stored")]);
      expect(await store.get(a)).toBeUndefined();
      expect(list(await store.get(b))).toEqual([0xff, 0xd8, 2]);
      await store.delete([a]);
      await store.delete([]);
      expect(await stored()).toEqual([b]);
    });

    it("keeps bytes exactly, empty and large crops alike", async () => {
      const { store } = await open();
      const big = new Uint8Array(300_000).map((_, i) => (i * 31 + 7) & 255);
      await store.put("sightings/00/big.jpg", big);
      await store.put("sightings/00/empty.jpg", new Uint8Array(0));
      expect(Buffer.from((await store.get("sightings/00/big.jpg"))!).equals(Buffer.from(big))).toBe(true);
      expect((await store.get("sightings/00/empty.jpg"))!.length).toBe(0);
    });

    it("deletes a retention's worth of crops at once (more than one S3 batch of 1000)", async () => {
      const { store, stored } = await open();
      const ids = Array.from({ length: 1100 }, (_, i) => `cam-${i % 7}:${i}`);
      const keys = ids.map((id) => cropKey("sightings", id));
      const keep = cropKey("alerts", "kept");
      // As the stores write a batch: a bounded number at a time.
      await putCrops(
        store,
        [keep, ...keys].map((k, i) => [k, bytes(i & 255)]),
      );
      expect((await stored()).length).toBe(1101);
      await store.delete(keys);
      expect(await stored()).toEqual([keep]);
    });

    it("lists every crop with its size, past one S3 page of 1000, and nothing else", async () => {
      const { store } = await open();
      const keys = Array.from({ length: 1050 }, (_, i) => cropKey("sightings", `cam:${i}`));
      await putCrops(
        store,
        keys.map((k, i) => [k, new Uint8Array(1 + (i % 5))]),
      );
      const listed = new Map<string, number>();
      for await (const c of store.list()) listed.set(c.key, c.size);
      expect([...listed.keys()].sort()).toEqual([...keys].sort());
      expect(keys.every((k, i) => listed.get(k) === 1 + (i % 5))).toBe(true);
    });
  });
}

// ---- folder ----

function walk(dir: string, base = dir): string[] {
  let out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) out = out.concat(walk(full, base));
    else out.push(path.relative(base, full).split(path.sep).join("/"));
  }
  return out;
}

cropContract("folder", async () => {
  const dir = path.join(tempDir("vigil-crops-"), "crops");
  const store = new FolderCropStore(dir);
  return { store, stored: async () => walk(dir) };
});

describe("folder crop store", () => {
  it("leaves no temporary files behind and says clearly when its folder cannot be used", async () => {
    const root = tempDir("vigil-crops-");
    const store = new FolderCropStore(path.join(root, "crops"));
    await Promise.all(Array.from({ length: 20 }, () => store.put("alerts/aa/same.jpg", bytes(1, 2))));
    expect(walk(path.join(root, "crops"))).toEqual(["alerts/aa/same.jpg"]);
    // A file where the folder should be: a setup error, not something waiting cures.
    writeFileSync(path.join(root, "blocked"), "");
    const blocked = new FolderCropStore(path.join(root, "blocked"));
    const err = await blocked.put("alerts/aa/x.jpg", bytes(1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CropStoreError);
    expect(isTransient(err)).toBe(false);
    expect(String(err)).toContain(path.join(root, "blocked"));
    await expect(blocked.check()).rejects.toBeInstanceOf(CropStoreError);
  });
});

// ---- S3 (s3s-fs, a real S3 server, on 127.0.0.1) ----

const s3Missing = s3UnavailableReason();
if (s3Missing) console.log(`skipping the S3 crop store tests: ${s3Missing}`);

// Short test timeouts: a request that hangs is exactly the failure these tests look for.
describe.skipIf(!!s3Missing)("S3 crop store against s3s-fs", { timeout: 30_000 }, () => {
  // Started only for the start-up check below, and only when this block runs.
  const qdrant = useQdrant("the checked start-up of a Qdrant store with S3 crops");
  let server: S3Server;
  const stores: CropStore[] = [];
  const s3Store = (bucket: string, more: Partial<S3CropStoreOptions> = {}) => {
    const store = new S3CropStore({
      bucket,
      prefix: "vigil/",
      endpoint: server.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: server.accessKey, secretAccessKey: server.secretKey },
      ...more,
    });
    stores.push(store);
    return store;
  };
  /** Every object key under the prefix, the prefix taken off. */
  const objects = async (bucket: string, prefix = "vigil/") => {
    const client = server.client();
    const keys: string[] = [];
    let token: string | undefined;
    try {
      do {
        const page = await client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
        );
        keys.push(...(page.Contents ?? []).map((o) => o.Key!.slice(prefix.length)));
        token = page.NextContinuationToken;
      } while (token);
    } finally {
      client.destroy();
    }
    return keys;
  };

  beforeAll(async () => {
    server = await S3Server.start();
    console.log(`s3s-fs ready in ${server.startMs} ms at ${server.endpoint}`);
  });
  afterAll(async () => {
    for (const s of stores) s.close();
    await server?.destroy();
  });
  // A test that fails while the server is frozen or stopped must not take the next ones down with it.
  afterEach(async () => {
    server.thaw();
    await server.start();
  });

  cropContract("S3 (s3s-fs)", async () => {
    const bucket = await server.createBucket();
    return { store: s3Store(bucket), stored: () => objects(bucket) };
  });

  it("keeps deployments apart by prefix in one bucket", async () => {
    const bucket = await server.createBucket();
    const one = s3Store(bucket, { prefix: "one/" });
    const two = s3Store(bucket, { prefix: "two/" });
    const key = cropKey("sightings", "s1");
    await one.put(key, bytes(1));
    expect(await two.get(key)).toBeUndefined();
    await two.put(key, bytes(2));
    await one.delete([key]);
    expect(list(await two.get(key))).toEqual([2]);
    expect(await objects(bucket, "")).toEqual([`two/${key}`]);
    // A listing is the deployment's own, with its keys as the store names them.
    const listed: string[] = [];
    for await (const c of two.list()) listed.push(c.key);
    expect(listed).toEqual([key]);
    for await (const c of one.list()) listed.push(c.key);
    expect(listed).toEqual([key]);
  });

  it("a wrong secret is a clear, non-transient error naming the credentials", async () => {
    const bucket = await server.createBucket();
    const wrong = s3Store(bucket, {
      credentials: { accessKeyId: server.accessKey, secretAccessKey: `${server.secretKey}x` },
    });
    for (const attempt of [
      () => wrong.put(cropKey("alerts", "a1"), bytes(1)),
      () => wrong.get(cropKey("alerts", "a1")),
      () => wrong.delete([cropKey("alerts", "a1")]),
      () => wrong.check(),
    ]) {
      const err = await attempt().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CropStoreError);
      expect(isTransient(err)).toBe(false);
      expect(String(err)).toMatch(/refused the request .*HTTP 403.*check the credentials/);
    }
    const err = await wrong.put(cropKey("alerts", "a1"), bytes(1)).catch((e: unknown) => e);
    expect(String(err)).toMatch(/SignatureDoesNotMatch/);
    expect(await objects(bucket)).toEqual([]);
  });

  it("a bucket that does not exist is named at check", async () => {
    await expect(s3Store("no-such-bucket-here").check()).rejects.toThrow(
      /bucket no-such-bucket-here does not exist/,
    );
  });

  it("a server that goes away is a transient error; back, it serves what it stored", async () => {
    const bucket = await server.createBucket();
    const store = s3Store(bucket, { maxAttempts: 2 });
    const key = cropKey("sightings", "cam-2:5:9");
    await store.put(key, bytes(7, 7));
    await server.stop();
    try {
      for (const attempt of [
        () => store.put(key, bytes(8)),
        () => store.get(key),
        () => store.delete([key]),
        () => store.check(),
      ]) {
        const started = Date.now();
        const err = await attempt().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(TransientError);
        expect(isTransient(err)).toBe(true);
        expect(String(err)).toMatch(/crop store s3:\/\/.* is unreachable or failing .*ECONNREFUSED/);
        expect(Date.now() - started).toBeLessThan(5_000);
      }
    } finally {
      await server.start();
    }
    expect(list(await store.get(key))).toEqual([7, 7]);
  });

  it("a frozen server fails a request within the timeout, as transient", async () => {
    const bucket = await server.createBucket();
    const store = s3Store(bucket, { requestTimeoutMs: 700, maxAttempts: 1 });
    await store.put(cropKey("sightings", "f"), bytes(1));
    server.freeze();
    try {
      const started = Date.now();
      const err = await store.get(cropKey("sightings", "f")).catch((e: unknown) => e);
      expect(isTransient(err)).toBe(true);
      expect(String(err)).toMatch(/is unreachable or failing/);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      server.thaw();
    }
    expect(list(await store.get(cropKey("sightings", "f")))).toEqual([1]);
  });

  /** store.crops as a Kubernetes Secret and the manifests would set it, in environment variables. */
  const s3Env = (bucket: string) => ({
    VIGIL_STORE__KIND: "qdrant",
    VIGIL_STORE__QDRANT_URL: "http://127.0.0.1:6333",
    VIGIL_STORE__CROPS__KIND: "s3",
    VIGIL_STORE__CROPS__S3__BUCKET: bucket,
    VIGIL_STORE__CROPS__S3__PREFIX: "env/",
    VIGIL_STORE__CROPS__S3__ENDPOINT: server.endpoint,
    VIGIL_STORE__CROPS__S3__FORCE_PATH_STYLE: "true",
    VIGIL_STORE__CROPS__S3__ACCESS_KEY_ID: server.accessKey,
    VIGIL_STORE__CROPS__S3__SECRET_ACCESS_KEY: server.secretKey,
  });

  it("is what store.crops configures, from environment variables as a Kubernetes Secret would set them", async () => {
    const bucket = await server.createBucket();
    const config = loadConfig({ env: s3Env(bucket) });
    const store = openCropStore(config);
    stores.push(store);
    expect(store).toBeInstanceOf(S3CropStore);
    await store.check();
    await store.put(cropKey("alerts", "x"), bytes(3));
    expect(await objects(bucket, "env/")).toEqual([cropKey("alerts", "x")]);
  });

  it.skipIf(!!qdrant.skip)(
    "a service opens its store checked (the Qdrant server, then the crops): a refused secret stops it at start",
    async () => {
      const { url, proxy } = await qdrant.endpoint();
      const checked = { ...s3Env(await server.createBucket()), VIGIL_STORE__QDRANT_URL: url };
      (await openCheckedStore(loadConfig({ env: checked }))).close();
      const wrong = loadConfig({
        env: { ...checked, VIGIL_STORE__CROPS__S3__SECRET_ACCESS_KEY: "not-the-secret" },
      });
      await expect(openCheckedStore(wrong)).rejects.toThrow(/refused the request .*check the credentials/);
      expect(proxy.violations).toEqual([]);
    },
  );
});

describe("store.crops configuration", () => {
  const load = (env: Record<string, string>) => () => loadConfig({ env });

  it("defaults to a folder under dataDir", () => {
    const config = loadConfig({ env: { VIGIL_DATA_DIR: "/var/lib/vigil" } });
    expect(config.store.crops.kind).toBe("folder");
    const store = openCropStore(config);
    expect(store).toBeInstanceOf(FolderCropStore);
    expect(store.location).toBe("/var/lib/vigil/crops");
  });

  it("refuses what cannot work, naming the key", () => {
    expect(load({ VIGIL_STORE__KIND: "qdrant", VIGIL_STORE__CROPS__KIND: "s3" })).toThrow(
      /store\.crops\.s3\.bucket: store\.crops\.kind is s3 but no bucket is set/,
    );
    expect(load({ VIGIL_STORE__CROPS__KIND: "s3", VIGIL_STORE__CROPS__S3__BUCKET: "b" })).toThrow(
      /store\.crops\.kind: crops go to object storage with the Qdrant store only/,
    );
    expect(
      load({
        VIGIL_STORE__KIND: "qdrant",
        VIGIL_STORE__CROPS__KIND: "s3",
        VIGIL_STORE__CROPS__S3__BUCKET: "b",
        VIGIL_STORE__CROPS__S3__ACCESS_KEY_ID: "only-the-id",
      }),
    ).toThrow(/store\.crops\.s3\.secretAccessKey: accessKeyId and secretAccessKey are set together/);
  });
});
