import type { AlertStore } from "../alert-store.ts";
import type { CropStore } from "../crop-store.ts";
import type { StateStore } from "../state-store.ts";
import type { QdrantAccess } from "../qdrant-identities.ts";
import { PostgresIdentities } from "./identities.ts";
import { PostgresAlertStore } from "./alert-store.ts";
import { PostgresPeople, type PeopleRecords } from "./people-store.ts";
import { PostgresPhotos, type PhotoRecords } from "./photo-records.ts";
import type { PoolOptions } from "./pool.ts";
import { RecordsPool } from "./records-pool.ts";
import { PostgresStateStore } from "./state-store.ts";

/** What of the stages' store lives in the records database beside Qdrant: records, not vectors. */
export interface StoreRecords {
  alerts: AlertStore;
  state: StateStore;
  people: PeopleRecords;
  photos: PhotoRecords;
  /** Unknown identities: their records here, their centroids in the Qdrant collections `q` reaches. */
  identities(q: QdrantAccess): PostgresIdentities;
  /** Connects and migrates now (a process's start), rather than on first use. */
  open(): Promise<void>;
  /** Whether the records database answers now (readiness). */
  healthy(): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * Alerts, checkpoints, people, thresholds, photos, exclusions and unknown identities in the PostgreSQL at `url` (`store.records`), on one pool; alert crops
 * in `crops`.
 */
export function postgresStoreRecords(url: string, crops: CropStore, options: PoolOptions = {}): StoreRecords {
  const db = new RecordsPool(url, options);
  return {
    alerts: new PostgresAlertStore(db, crops),
    state: new PostgresStateStore(db),
    people: new PostgresPeople(db),
    photos: new PostgresPhotos(db),
    identities: (q) => new PostgresIdentities(db, q),
    open: async () => void (await db.get()),
    healthy: () => db.healthy(),
    close: () => db.close(),
  };
}
