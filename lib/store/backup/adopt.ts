import Database from "better-sqlite3";
import type { Config } from "../../config/index.ts";
import type { NewAlert } from "../alert-store.ts";
import { openCropStore } from "../open-store.ts";
import { inTransaction, openPool } from "../postgres/pool.ts";
import { postgresStoreRecords } from "../postgres/store-records.ts";
import { insertRows, refuseRows } from "./records.ts";
import { PostgresApiStore } from "../postgres/api-store.ts";
import { QdrantStore } from "../qdrant-store.ts";
import type { IdentityState } from "../identity-store.ts";
import { PostgresIdentities } from "../postgres/identities.ts";

export interface AdoptReport {
  people: number;
  thresholds: number;
  photos: number;
  exclusions: number;
  unknowns: number;
  alerts: number;
  acknowledged: number;
  checkpoints: number;
}

/**
 * Copies the records a Qdrant deployment kept as payloads (people, thresholds, enrolled photos, exclusions, alerts
 * with their acknowledgements, match's checkpoints) into its records database, for a deployment that turns
 * `store.records.kind: postgres` on: from then on the store reads them there, and without this they would look
 * gone. Idempotent (upserts by id; an acknowledgement already there stands), so it may run again, e.g. after a
 * match replica still on the old config wrote a little more.
 */
export async function adoptQdrantRecords(
  config: Config,
  say: (line: string) => void = () => {},
): Promise<AdoptReport> {
  if (config.store.kind !== "qdrant")
    throw new Error("store.kind is not qdrant: there are no Qdrant payloads to adopt");
  if (config.store.records.kind !== "postgres")
    throw new Error("store.records.kind is not postgres: there is no records database to adopt them into");
  const crops = openCropStore(config);
  // The same collections read as the old config did (no records database), written through the new one.
  const from = new QdrantStore(
    config.store.qdrantUrl!,
    config.store.qdrantPrefix,
    config.store.qdrantApiKey,
    crops,
    {
      layout: config.store.qdrantCollections,
    },
  );
  const to = postgresStoreRecords(config.store.records.url!, crops);
  // The identities are adopted through the store as the new config opens it (rows there; their centroids stay).
  const into = new QdrantStore(
    config.store.qdrantUrl!,
    config.store.qdrantPrefix,
    config.store.qdrantApiKey,
    crops,
    { layout: config.store.qdrantCollections, records: to },
  );
  const report: AdoptReport = {
    people: 0,
    thresholds: 0,
    photos: 0,
    exclusions: 0,
    unknowns: 0,
    alerts: 0,
    acknowledged: 0,
    checkpoints: 0,
  };
  try {
    for (const p of await from.listPeople()) {
      await to.people.upsert({ id: p.id, name: p.name, watchlistId: p.watchlistId });
      report.people++;
      // Their vectors stay where they are; the records written since the upgrade carry ids only beside them.
      for (const photo of await from.listFaces(p.id)) {
        await to.photos.addPhoto(photo);
        report.photos++;
      }
      for (const exclusion of await from.listExclusions(p.id)) {
        await to.photos.addExclusion(exclusion);
        report.exclusions++;
      }
    }
    for (const w of await from.listWatchlists())
      if (w.threshold !== undefined) {
        await to.people.setThreshold(w.id, w.threshold);
        report.thresholds++;
      }
    say(
      `people: ${report.people}, thresholds: ${report.thresholds}, photos: ${report.photos}, exclusions: ${report.exclusions}`,
    );
    let cursor: string | undefined;
    do {
      const page = await from.listAlerts({ limit: 200, cursor });
      const vectors = await from.alertVectors(page.items.map((a) => a.id));
      const batch: NewAlert[] = [];
      for (const a of page.items) {
        const { acknowledged: _ack, matchedFaceId, ...rest } = a;
        batch.push({
          ...rest,
          ...(matchedFaceId ? { matchedFaceId } : {}),
          vector: vectors.get(a.id),
          crop: (await from.alertCrop(a.id)) ?? new Uint8Array(0),
        });
      }
      await to.alerts.addAlerts(batch);
      for (const a of page.items)
        if (a.acknowledged) {
          await to.alerts.acknowledgeAlert(a.id, a.acknowledged);
          report.acknowledged++;
        }
      report.alerts += page.items.length;
      cursor = page.nextCursor ?? undefined;
      say(`alerts: ${report.alerts}`);
    } while (cursor);
    if (!(into.unknowns instanceof PostgresIdentities))
      throw new Error("the records store keeps no identities");
    let page: string | undefined;
    do {
      const listed = await from.unknowns.listUnknowns({ limit: 200, cursor: page });
      const states: IdentityState[] = [];
      for (const i of listed.items) {
        const state = await from.unknowns.getUnknown(i.id);
        if (state) states.push(state);
      }
      await into.unknowns.adopt(states);
      report.unknowns += states.length;
      page = listed.nextCursor ?? undefined;
    } while (page);
    say(`unknown identities: ${report.unknowns}`);
    for (const key of await from.stateKeys()) {
      const value = await from.loadState(key);
      if (value) await to.state.saveState(key, value);
      report.checkpoints++;
    }
    say(`checkpoints: ${report.checkpoints}`);
    return report;
  } finally {
    from.close(); // `into` holds nothing of its own: its records and crops are these
    await to.close();
  }
}

/** The API's tables of a SQLite records file, in the order their rows may be inserted (a delivery names its webhook). */
const API_TABLES = ["api_keys", "audit_anchor", "audit_log", "webhooks", "webhook_deliveries", "mqtt_outbox"];

/**
 * Copies the API's records of a SQLite file (`api.authStorePath`: keys, the audit log with its anchor, webhooks,
 * deliveries, the MQTT outbox) into the records database, in one transaction, so a deployment moving to PostgreSQL
 * keeps its keys and its audit trail (the chain verifies there as it did in the file). Refused when the database
 * already holds API records: it never merges two chains.
 */
export async function adoptSqliteApiRecords(config: Config, file: string): Promise<Record<string, number>> {
  if (config.store.records.kind !== "postgres")
    throw new Error("store.records.kind is not postgres: there is no records database to adopt them into");
  const url = config.store.records.url!;
  await (await PostgresApiStore.open(url)).close(); // migrated to this release's schema
  const sqlite = new Database(file, { readonly: true, fileMustExist: true });
  const pool = await openPool(url);
  try {
    const present = new Set(
      (sqlite.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map(
        (t) => t.name,
      ),
    );
    return await inTransaction(pool, async (client) => {
      await refuseRows(
        client,
        API_TABLES,
        (table) => `the records database already has ${table} rows: adopt into one with no API records`,
      );
      const counts: Record<string, number> = {};
      for (const table of API_TABLES) {
        counts[table] = 0;
        if (!present.has(table)) continue;
        let batch: Record<string, unknown>[] = [];
        for (const row of sqlite.prepare(`SELECT * FROM ${table}`).iterate() as Iterable<
          Record<string, unknown>
        >) {
          batch.push(row);
          if (batch.length === 200) {
            await insertRows(client, table, batch);
            counts[table] += batch.length;
            batch = [];
          }
        }
        await insertRows(client, table, batch);
        counts[table] += batch.length;
      }
      return counts;
    });
  } finally {
    sqlite.close();
    await pool.end();
  }
}
