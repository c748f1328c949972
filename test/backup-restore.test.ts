import { QdrantClient } from "@qdrant/js-client-rest";
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { cliActor, KeyService } from "../lib/api/keys.ts";
import { l2normalize } from "../lib/geometry/index.ts";
import { unknownIdFor } from "../lib/identities/identity.ts";
import type { NewAlert } from "../lib/store/alert-store.ts";
import { adoptQdrantRecords, adoptSqliteApiRecords } from "../lib/store/backup/adopt.ts";
import { backupDeployment, restoreDeployment } from "../lib/store/backup/deployment.ts";
import { RECORD_TABLES } from "../lib/store/backup/records.ts";
import { deploymentCollections } from "../lib/store/backup/vectors.ts";
import { openStore } from "../lib/store/open-store.ts";
import { PostgresApiStore } from "../lib/store/postgres/api-store.ts";
import { openPool } from "../lib/store/postgres/pool.ts";
import type { Sighting } from "../lib/store/sighting-store.ts";
import { SqliteApiStore } from "../lib/store/sqlite-api-store.ts";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import { nearUnit } from "../lib/testing/vectors.ts";
import { tempDir, testConfig } from "./helpers.ts";
import { usePostgres } from "./postgres-helpers.ts";
import { useQdrant } from "./qdrant-helpers.ts";

const postgres = usePostgres("backup and restore");
const qdrant = useQdrant("backup and restore");
const T0 = Date.UTC(2026, 5, 1);
const vec = (seed: number, dim = 16) =>
  l2normalize(new Float32Array(dim).map((_, k) => Math.sin(seed * 12.9898 + k * 78.233)));
const quality = { faceSize: 80, interOcular: 30, sharpness: 100, yawDeg: 0, pitchDeg: 0, detScore: 0.9 };
/** A sighting that matched nobody: what unknown identities are made of. */
const stranger = (id: string, ts: number, vector: Float32Array): Sighting => ({
  id,
  trackId: `t-${id}`,
  cameraId: "door",
  startTs: ts,
  endTs: ts + 500,
  faces: 2,
  modelId: "m1",
  quality,
  match: null,
  vector,
  crop: Uint8Array.of(3, 3),
});

/** A cluster deployment's config: vectors under `prefix`, records in `db`, crops in `crops`. */
const deployment = (prefix: string, db: string, crops: string) =>
  testConfig({
    "store.kind": "qdrant",
    "store.qdrantUrl": qdrant.url(),
    "store.qdrantPrefix": prefix,
    "store.records.kind": "postgres",
    "store.records.url": db,
    "store.crops.kind": "folder",
    "store.crops.dir": crops,
  });

/** Every point of every collection of a prefix, by collection name without the prefix and point id. */
async function vectorsOf(prefix: string) {
  const client = new QdrantClient({ url: qdrant.url(), checkCompatibility: false });
  const out: Record<string, Record<string, { vector: unknown; payload: unknown }>> = {};
  for (const collection of await deploymentCollections(client, prefix)) {
    const points: Record<string, { vector: unknown; payload: unknown }> = {};
    let offset: string | number | undefined;
    do {
      const page = await client.scroll(collection, {
        limit: 100,
        with_vector: true,
        with_payload: true,
        ...(offset === undefined ? {} : { offset }),
      });
      for (const p of page.points) points[String(p.id)] = { vector: p.vector, payload: p.payload };
      const next = page.next_page_offset;
      offset = typeof next === "string" || typeof next === "number" ? next : undefined;
    } while (offset !== undefined);
    out[collection.slice(prefix.length + 1)] = points;
  }
  return out;
}

async function recordsOf(db: string) {
  const pool = await openPool(db);
  try {
    const out: Record<string, unknown[]> = {};
    for (const t of RECORD_TABLES)
      out[t.name] = (await pool.query(`SELECT * FROM ${t.name} ORDER BY ${t.key}`)).rows;
    return out;
  } finally {
    await pool.end();
  }
}

describe.skipIf(postgres.skip !== undefined || qdrant.skip !== undefined)(
  "vigil backup / vigil restore of a deployment (real PostgreSQL and Qdrant)",
  () => {
    it("restores every record and every vector, by id, into an empty deployment, and refuses a non-empty one", async () => {
      const crops = path.join(tempDir("vigil-backup-crops-"), "crops");
      const source = deployment(`bka${Date.now().toString(36)}`, await postgres.database(), crops);

      // A deployment with something of everything: people and faces, sightings with crops, alerts (one
      // acknowledged), a threshold, match state; keys, audit entries, a webhook with a delivery, an MQTT message.
      const store = openStore(source);
      try {
        await store.upsertPerson({ id: "ann", name: "Ann", watchlistId: "vip" });
        await store.addFace({
          faceId: "ann:1.jpg",
          personId: "ann",
          modelId: "m1",
          vector: vec(1),
          source: "1.jpg",
        });
        await store.addExclusion({
          id: "ann:x1",
          personId: "ann",
          modelId: "m1",
          vector: vec(2),
          note: "twin",
        });
        await store.setWatchlistThreshold("vip", 0.6);
        const sightings: Sighting[] = Array.from({ length: 300 }, (_, i) => ({
          id: `s${i}`,
          trackId: `t${i}`,
          cameraId: `cam-${i % 4}`,
          startTs: T0 + i * 1000,
          endTs: T0 + i * 1000 + 500,
          faces: 2,
          modelId: "m1",
          quality,
          match: i % 10 === 0 ? { personId: "ann", name: "Ann", score: 0.7 } : null,
          vector: vec(100 + i),
          crop: Uint8Array.of(1, 2, i % 256),
        }));
        await store.addSightings(sightings);
        const alerts: NewAlert[] = [0, 1, 2].map((i) => ({
          id: `a${i}`,
          watchlistId: "vip",
          personId: "ann",
          personName: "Ann",
          cameraId: "cam-0",
          ts: T0 + i,
          score: 0.8,
          threshold: 0.6,
          modelId: "m1",
          faceId: `f${i}`,
          box: { x: 1, y: 2, width: 30, height: 40 },
          crop: Uint8Array.of(9, i),
        }));
        await store.addAlerts(alerts);
        await store.acknowledgeAlert("a1", { by: "sam", ts: T0 + 10, note: "seen" });
        await store.saveState("match/p0", Uint8Array.of(7, 7, 7));
        for (const [i, v] of [vec(30), nearUnit(vec(30), 1)].entries()) {
          const s = stranger(`u${i}`, T0 + i * 1000, v);
          await store.addSightings([s]);
          await store.unknowns.assignUnknown(s, 0.8);
        }
      } finally {
        store.close();
      }
      const records = await PostgresApiStore.open(source.store.records.url!);
      try {
        const keys = new KeyService(records, records);
        await keys.create({ name: "ops", role: "admin" }, cliActor());
        await keys.create({ name: "desk", role: "viewer" }, cliActor());
        await records.addWebhook({
          id: "w1",
          url: "https://hooks.example/a",
          secret: "s",
          watchlists: null,
          description: "",
          createdTs: T0,
        });
        await records.addDelivery({
          id: "w1:a0",
          webhookId: "w1",
          alertId: "a0",
          state: "delivered",
          attempts: 1,
          lastStatus: 200,
          lastError: null,
          createdTs: T0,
          updatedTs: T0 + 1,
          nextAttemptTs: null,
          payload: "{}",
        });
        await records.addMqttMessage({
          id: "a0",
          payload: "{}",
          cameraId: "cam-0",
          personName: "Ann",
          createdTs: T0,
        });
      } finally {
        await records.close();
      }

      // Another deployment whose prefix starts with this one's: not part of this backup.
      const raw = new QdrantClient({ url: qdrant.url(), checkCompatibility: false });
      await raw.createCollection(`${source.store.qdrantPrefix}_x_sightings__m1`, {
        vectors: { size: 4, distance: "Cosine" },
      });

      const dir = path.join(tempDir("vigil-backup-"), "b1");
      const lines: string[] = [];
      const manifest = await backupDeployment(source, dir, (l) => lines.push(l));
      expect(Object.keys(manifest.vectors!.collections).some((c) => c.startsWith("x_"))).toBe(false);
      expect(manifest.records!.rows).toMatchObject({
        api_keys: 2,
        webhooks: 1,
        webhook_deliveries: 1,
        mqtt_outbox: 1,
        photos: 1,
        exclusions: 1,
        unknowns: 1,
      });
      expect(manifest.records!.rows.audit_log).toBeGreaterThanOrEqual(2);
      expect(Object.values(manifest.vectors!.collections).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(
        300,
      );
      expect(manifest.crops!.objects).toBeGreaterThanOrEqual(300);
      expect(lines.some((l) => l.startsWith("vectors: sightings"))).toBe(true);
      await expect(backupDeployment(source, dir)).rejects.toThrow(/not empty/);

      // Into an empty deployment: another prefix, another database, the same crop store.
      const target = deployment(`bkb${Date.now().toString(36)}`, await postgres.database(), crops);
      const report = await restoreDeployment(target, dir);
      expect(report.cropsMissing).toBe(0);
      expect(report.cropsListed).toBe(manifest.crops!.objects);
      expect(await vectorsOf(target.store.qdrantPrefix)).toEqual(await vectorsOf(source.store.qdrantPrefix));
      expect(await recordsOf(target.store.records.url!)).toEqual(await recordsOf(source.store.records.url!));

      // The restored deployment works as the old one did: the audit chain verifies, the alerts and the person read back.
      const restored = await PostgresApiStore.open(target.store.records.url!);
      try {
        expect((await restored.verifyAudit()).ok).toBe(true);
      } finally {
        await restored.close();
      }
      const back = openStore(target);
      try {
        expect((await back.getAlert("a1"))?.acknowledged).toEqual({ by: "sam", ts: T0 + 10, note: "seen" });
        expect(await back.getPerson("ann")).toMatchObject({ name: "Ann", watchlistId: "vip" });
        expect(await back.watchlistThreshold("vip")).toBe(0.6);
        expect(await back.loadState("match/p0")).toEqual(Uint8Array.of(7, 7, 7));
        expect((await back.crop("s5"))?.length).toBe(3);
      } finally {
        back.close();
      }

      // Never merged into live data: the same target again is refused, and the records are left as they were.
      await expect(restoreDeployment(target, dir)).rejects.toThrow(/not empty|already has collections/);

      // Restored where the crops are gone: everything else comes back, and it says what is missing.
      const bare = deployment(
        `bkc${Date.now().toString(36)}`,
        await postgres.database(),
        path.join(tempDir("vigil-empty-crops-"), "c"),
      );
      const partial = await restoreDeployment(bare, dir);
      expect(partial.cropsMissing).toBe(manifest.crops!.objects);
    }, 120_000);

    it("vigil records adopt: a Qdrant deployment turning on its records database keeps its people, alerts and checkpoints", async () => {
      const crops = path.join(tempDir("vigil-adopt-crops-"), "crops");
      const db = await postgres.database();
      const prefix = `bkd${Date.now().toString(36)}`;
      // Before: everything as payloads in Qdrant (no records database).
      const before = testConfig({
        "store.kind": "qdrant",
        "store.qdrantUrl": qdrant.url(),
        "store.qdrantPrefix": prefix,
        "store.crops.kind": "folder",
        "store.crops.dir": crops,
      });
      const old = openStore(before);
      try {
        await old.upsertPerson({ id: "ann", name: "Ann", watchlistId: "vip" });
        await old.addFace({
          faceId: "ann:1.jpg",
          personId: "ann",
          modelId: "m1",
          vector: vec(1),
          source: "1.jpg",
          crop: Uint8Array.of(0xff, 0xd8, 7),
        });
        await old.addExclusion({
          id: "ann:x1",
          personId: "ann",
          modelId: "m1",
          vector: vec(3),
          note: "twin",
        });
        await old.setWatchlistThreshold("vip", 0.61);
        await old.addAlerts(
          [0, 1].map((i) => ({
            id: `a${i}`,
            watchlistId: "vip",
            personId: "ann",
            personName: "Ann",
            cameraId: "door",
            ts: T0 + i,
            score: 0.8,
            threshold: 0.61,
            modelId: "m1",
            faceId: `f${i}`,
            box: { x: 1, y: 2, width: 3, height: 4 },
            crop: Uint8Array.of(5, i),
            vector: vec(10 + i),
          })),
        );
        await old.acknowledgeAlert("a1", { by: "sam", ts: T0 + 5, note: null });
        await old.saveState("match/p1", Uint8Array.of(4, 2));
        for (const [i, v] of [vec(20), nearUnit(vec(20), 1)].entries()) {
          const s = stranger(`u${i}`, T0 + i * 1000, v);
          await old.addSightings([s]);
          await old.unknowns.assignUnknown(s, 0.8);
        }
      } finally {
        old.close();
      }
      const after = deployment(prefix, db, crops);
      // Turned on without adopting: the records look gone (what the command is for).
      const unadopted = openStore(after);
      try {
        expect(await unadopted.getPerson("ann")).toBeUndefined();
      } finally {
        unadopted.close();
      }
      const report = await adoptQdrantRecords(after);
      expect(report).toEqual({
        people: 1,
        thresholds: 1,
        photos: 1,
        exclusions: 1,
        unknowns: 1,
        alerts: 2,
        acknowledged: 1,
        checkpoints: 1,
      });
      expect(await adoptQdrantRecords(after)).toEqual(report); // again: nothing doubled, nothing lost
      const now = openStore(after);
      try {
        expect(await now.getPerson("ann")).toMatchObject({ name: "Ann", watchlistId: "vip", faces: 1 });
        expect(await now.watchlistThreshold("vip")).toBe(0.61);
        expect(await now.listFaces("ann")).toEqual([
          { faceId: "ann:1.jpg", personId: "ann", modelId: "m1", source: "1.jpg", hasCrop: true },
        ]);
        expect(await now.faceCrop("ann:1.jpg")).toEqual(Uint8Array.of(0xff, 0xd8, 7));
        expect(await now.listExclusions("ann")).toEqual([
          { id: "ann:x1", personId: "ann", modelId: "m1", note: "twin" },
        ]);
        expect(await now.exclusionScore("ann", "m1", vec(3))).toBeGreaterThan(0.999);
        expect(
          (await now.listAlerts({ limit: 10 })).items.map((a) => [a.id, a.acknowledged?.by ?? null]),
        ).toEqual([
          ["a1", "sam"],
          ["a0", null],
        ]);
        expect([...(await now.alertVectors(["a0"])).get("a0")!]).toEqual([...vec(10)]);
        expect(await now.alertCrop("a0")).toEqual(Uint8Array.of(5, 0));
        expect(await now.loadState("match/p1")).toEqual(Uint8Array.of(4, 2));
        expect(await now.countAlerts({ acknowledged: true })).toBe(1);
        // The stranger is a row now, and its centroid (re-indexed) still takes the same face.
        const id = unknownIdFor("u0");
        expect(await now.unknowns.getUnknown(id)).toMatchObject({ count: 2, cameras: ["door"] });
        const later = stranger("u2", T0 + 5000, nearUnit(vec(20), 2));
        await now.addSightings([later]);
        expect(await now.unknowns.assignUnknown(later, 0.8)).toMatchObject({ id, created: false });
        expect((await now.unknowns.getUnknown(id))!.count).toBe(3);
      } finally {
        now.close();
      }
    }, 60_000);

    it("vigil records adopt --sqlite: the API's keys, audit chain and webhooks move from their SQLite file, once", async () => {
      const file = path.join(tempDir("vigil-adopt-api-"), "vigil-api.db");
      const old = new SqliteApiStore(file);
      let created: string;
      try {
        const keys = new KeyService(old, old);
        created = (await keys.create({ name: "ops", role: "admin" }, cliActor())).record.id;
        await keys.create({ name: "desk", role: "viewer" }, cliActor());
        await old.addWebhook({
          id: "w1",
          url: "https://hooks.example/a",
          secret: "s",
          watchlists: ["vip"],
          description: "d",
          createdTs: T0,
        });
      } finally {
        old.close();
      }
      const config = deployment("bke", await postgres.database(), tempDir("vigil-adopt-crops-"));
      const counts = await adoptSqliteApiRecords(config, file);
      expect(counts).toMatchObject({ api_keys: 2, webhooks: 1 });
      expect(counts.audit_log).toBeGreaterThanOrEqual(2);
      const now = await PostgresApiStore.open(config.store.records.url!);
      try {
        expect(await now.verifyAudit()).toMatchObject({ ok: true, entries: counts.audit_log });
        expect((await now.listKeys()).map((k) => k.name).sort()).toEqual(["desk", "ops"]);
        expect((await now.getKey(created))?.role).toBe("admin");
        expect(await now.getWebhook("w1")).toMatchObject({ watchlists: ["vip"], secret: "s" });
      } finally {
        await now.close();
      }
      await expect(adoptSqliteApiRecords(config, file)).rejects.toThrow(/already has api_keys rows/);
    });

    it("refuses a folder that is not a finished backup", async () => {
      const dir = tempDir("vigil-not-a-backup-");
      mkdirSync(path.join(dir, "records"));
      writeFileSync(path.join(dir, "crops.jsonl"), "");
      const target = deployment("bkx", await postgres.database(), tempDir("vigil-crops-x-"));
      await expect(restoreDeployment(target, dir)).rejects.toThrow(/no manifest.json/);
    });
  },
);

describe("vigil backup / vigil restore of the embedded store (one SQLite file)", () => {
  it("copies the file consistently and restores it where the target keeps its store, never over one", async () => {
    const file = path.join(tempDir("vigil-embedded-"), "vigil.db");
    const source = testConfig({ "store.path": file });
    const store = new SqliteStore(file, { refreshMs: 0 });
    const keys = new SqliteApiStore(file);
    try {
      await store.upsertPerson({ id: "ann", name: "Ann", watchlistId: "default" });
      await store.addFace({
        faceId: "ann:1.jpg",
        personId: "ann",
        modelId: "m1",
        vector: vec(1),
        source: "1.jpg",
      });
      await new KeyService(keys, keys).create({ name: "ops", role: "admin" }, cliActor());
    } finally {
      keys.close();
      store.close();
    }
    const dir = path.join(tempDir("vigil-backup-"), "e1");
    const manifest = await backupDeployment(source, dir);
    expect(Object.keys(manifest.sqlite)).toEqual(["vigil.db"]);
    expect(manifest.records).toBeNull();
    expect(manifest.vectors).toBeNull();
    expect(manifest.crops).toBeNull();

    const target = testConfig({ "store.path": path.join(tempDir("vigil-embedded-"), "restored.db") });
    expect((await restoreDeployment(target, dir)).sqlite).toEqual([target.store.path]);
    const back = new SqliteStore(target.store.path!, { refreshMs: 0 });
    const backKeys = new SqliteApiStore(target.store.path!);
    try {
      expect(await back.getPerson("ann")).toMatchObject({ name: "Ann" });
      expect((await back.listFaceVectors("m1")).map((f) => f.faceId)).toEqual(["ann:1.jpg"]);
      expect((await backKeys.listKeys()).map((k) => k.name)).toEqual(["ops"]);
      expect((await backKeys.verifyAudit()).ok).toBe(true);
    } finally {
      backKeys.close();
      back.close();
    }
    await expect(restoreDeployment(target, dir)).rejects.toThrow(/exists: restore into an empty deployment/);

    // The same through the command line, as an operator runs it.
    const config = path.join(tempDir("vigil-backup-cli-"), "vigil.config.json");
    writeFileSync(config, JSON.stringify({ store: { path: file } }));
    const cliDir = path.join(tempDir("vigil-backup-"), "cli");
    const run = (...args: string[]) =>
      spawnSync(process.execPath, [path.resolve("bin/vigil.js"), "--config", config, ...args], {
        encoding: "utf8",
      });
    const made = run("backup", cliDir, "--json");
    expect(made.status, made.stderr).toBe(0);
    expect(JSON.parse(made.stdout)).toMatchObject({ format: "vigil-backup/1", sqlite: { "vigil.db": file } });
    const refused = run("restore", cliDir);
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/exists: restore into an empty deployment/);
  }, 60_000);
});
