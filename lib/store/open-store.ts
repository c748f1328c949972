import path from "node:path";
import { storePath, type Config } from "../config/index.ts";
import type { AlertStore } from "./alert-store.ts";
import type { IdentityStore } from "./identity-store.ts";
import { FolderCropStore, type CropStore } from "./crop-store.ts";
import { QdrantStore } from "./qdrant-store.ts";
import { S3CropStore } from "./s3-crop-store.ts";
import type { ApiStore } from "./api-store.ts";
import { PostgresApiStore } from "./postgres/api-store.ts";
import { postgresStoreRecords } from "./postgres/store-records.ts";
import { SqliteApiStore } from "./sqlite-api-store.ts";
import type { SightingStore } from "./sighting-store.ts";
import { SqliteStore } from "./sqlite-store.ts";
import type { Logger } from "../telemetry/log.ts";
import type { StateStore } from "./state-store.ts";
import type { WatchlistStore } from "./watchlist-store.ts";

export type Store = WatchlistStore &
  SightingStore &
  AlertStore &
  StateStore & { close(): void; unknowns: IdentityStore };

/** The configured store: the embedded SQLite file by default, Qdrant for the scale-out deployment. */
export function openStore(config: Config, fileOverride?: string): Store {
  if (config.store.kind === "qdrant") {
    if (!config.store.qdrantUrl) throw new Error("store.kind is qdrant but store.qdrantUrl is not set");
    const crops = openCropStore(config);
    const records = config.store.records;
    return new QdrantStore(
      config.store.qdrantUrl,
      config.store.qdrantPrefix,
      config.store.qdrantApiKey,
      crops,
      {
        layout: config.store.qdrantCollections,
        // Alerts and checkpoints are records: with a records database they live there (Qdrant keeps vectors).
        ...(records.kind === "postgres" ? { records: postgresStoreRecords(records.url!, crops) } : {}),
      },
    );
  }
  return new SqliteStore(fileOverride ?? storePath(config), { refreshMs: config.store.refreshMs });
}

/**
 * `openStore`, then a check of what the first write would otherwise find out: a service started with a bucket that
 * does not exist, a refused secret, a Qdrant server too old for the requests Vigil sends or a records database
 * migrated by a newer release fails at start-up with the reason, not on its first sighting.
 */
export async function openCheckedStore(config: Config, fileOverride?: string): Promise<Store> {
  const store = openStore(config, fileOverride);
  if (store instanceof QdrantStore) {
    try {
      // Fail at start, naming both versions, rather than on the first write a too-old server would mis-apply.
      await store.checkServer();
      await store.checkCrops();
      await store.checkRecords();
    } catch (err) {
      store.close();
      throw err;
    }
  }
  return store;
}

/** Where the Qdrant store's crops go (`store.crops`): a folder under `dataDir` or an S3-compatible bucket. */
export function openCropStore(config: Config): CropStore {
  const c = config.store.crops;
  if (c.kind === "s3") {
    const s3 = c.s3;
    if (!s3.bucket) throw new Error("store.crops.kind is s3 but store.crops.s3.bucket is not set");
    return new S3CropStore({
      bucket: s3.bucket,
      prefix: s3.prefix,
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: s3.forcePathStyle,
      credentials:
        s3.accessKeyId && s3.secretAccessKey
          ? {
              accessKeyId: s3.accessKeyId,
              secretAccessKey: s3.secretAccessKey,
              ...(s3.sessionToken ? { sessionToken: s3.sessionToken } : {}),
            }
          : undefined,
      requestTimeoutMs: s3.requestTimeoutMs,
      maxAttempts: s3.maxAttempts,
    });
  }
  return new FolderCropStore(path.resolve(c.dir ?? path.join(config.dataDir, "crops")));
}

/**
 * The operator API's keys, audit log and webhooks (`store.records`): a PostgreSQL database shared by every API
 * replica (connected and migrated here, so a wrong address fails at start), or SQLite: tables in the embedded
 * store's file, or, beside a Qdrant store (no tables there), the file `api.authStorePath` (default
 * `<dataDir>/vigil-api.db`). `fileOverride` names the SQLite file; it has no say over a PostgreSQL store. `log` is
 * told of errors on a PostgreSQL pool's idle connections.
 */
export async function openApiStore(config: Config, fileOverride?: string, log?: Logger): Promise<ApiStore> {
  const records = config.store.records;
  if (records.kind === "postgres")
    return PostgresApiStore.open(records.url!, {
      // The server restarted or dropped an idle connection: the pool makes another; said, not silently dropped.
      onIdleError: (err) =>
        log?.warn({ err }, "records: an idle PostgreSQL connection failed; the pool opens another"),
    });
  if (config.store.kind === "qdrant")
    return new SqliteApiStore(
      path.resolve(config.api.authStorePath ?? path.join(config.dataDir, "vigil-api.db")),
    );
  return new SqliteApiStore(fileOverride ?? config.api.authStorePath ?? storePath(config));
}
