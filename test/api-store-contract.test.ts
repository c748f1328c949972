import Database from "better-sqlite3";
import { rmSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { auditRetention } from "../lib/api/audit-retention.ts";
import type { ApiStore } from "../lib/store/api-store.ts";
import type { NewAuditEntry } from "../lib/store/audit-store.ts";
import { InvalidInputError } from "../lib/store/errors.ts";
import type { StoredApiKey } from "../lib/store/key-store.ts";
import { PostgresApiStore } from "../lib/store/postgres/api-store.ts";
import { SqliteApiStore } from "../lib/store/sqlite-api-store.ts";
import type { WebhookDelivery } from "../lib/store/webhook-store.ts";
import { openApiStore } from "../lib/store/open-store.ts";
import type { Logger } from "../lib/telemetry/log.ts";
import { until } from "../lib/testing/process.ts";
import { allPages, tempDir, testConfig } from "./helpers.ts";
import { usePostgres } from "./postgres-helpers.ts";

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 0, 1);

const by = (ts: number) => ({ ts, actor: { keyId: null, name: "system:test", role: null }, summary: {} });

const entry = (ts: number, action = "search", keyId = "k1"): NewAuditEntry => ({
  ts,
  actor: { keyId, name: "desk", role: "operator" },
  action,
  target: null,
  outcome: "ok",
  status: 200,
  summary: { q: ts },
  ip: "127.0.0.1",
});

const key = (id: string, createdTs: number): StoredApiKey => ({
  id,
  name: `key ${id}`,
  role: "operator",
  hash: "ab".repeat(32),
  createdTs,
  revokedTs: null,
  lastUsedTs: null,
  rateLimitPerMinute: id === "k2" ? 30 : null,
});

const delivery = (webhookId: string, alertId: string, createdTs: number): WebhookDelivery => ({
  id: `${webhookId}:${alertId}`,
  webhookId,
  alertId,
  state: "pending",
  attempts: 0,
  lastStatus: null,
  lastError: null,
  createdTs,
  updatedTs: createdTs,
  nextAttemptTs: createdTs,
  payload: JSON.stringify({ alertId }),
});

const hook = (id: string, createdTs = T0, watchlists: string[] | null = null) => ({
  id,
  url: `http://127.0.0.1:9/${id}`,
  secret: `secret-${id}`,
  watchlists,
  description: `hook ${id}`,
  createdTs,
});

/** A store to test, and a way around it to the same database: someone with the file, or with a login. */
interface Opened {
  store: ApiStore;
  /** Runs one statement directly against the database, as someone tampering with it would. */
  sql(statement: string): Promise<void>;
  /** Removes what the test left (a temporary folder), once the store is closed. */
  dispose?: () => void;
}

/**
 * One behaviour for the API's records whichever database holds them: the embedded SQLite file, and PostgreSQL
 * (several API replicas). Each test opens a fresh, empty store.
 */
function apiStoreContract(label: string, open: () => Promise<Opened>, skip?: string) {
  describe.skipIf(skip !== undefined)(`API record store contract: ${label}`, () => {
    const opened: Opened[] = [];
    const fresh = async () => {
      const o = await open();
      opened.push(o);
      return o;
    };
    afterEach(async () => {
      for (const o of opened.splice(0)) {
        await o.store.close();
        o.dispose?.();
      }
    });

    it("keeps keys by their hash, lists them without it, and lets the first revocation stand", async () => {
      const { store } = await fresh();
      await store.addKey(key("k2", T0 + 2));
      await store.addKey(key("k1", T0 + 1));
      expect(await store.getKey("k2")).toEqual(key("k2", T0 + 2));
      expect(await store.getKey("nope")).toBeUndefined();
      const listed = await store.listKeys();
      expect(listed.map((k) => k.id)).toEqual(["k1", "k2"]);
      expect(listed[1]).not.toHaveProperty("hash");
      expect(listed[1]!.rateLimitPerMinute).toBe(30);
      await expect(store.addKey(key("k1", T0))).rejects.toThrow();
      expect(await store.revokeKey("k1", T0 + 10)).toMatchObject({ id: "k1", revokedTs: T0 + 10 });
      expect(await store.revokeKey("k1", T0 + 20)).toMatchObject({ revokedTs: T0 + 10 });
      expect(await store.revokeKey("nope", T0)).toBeUndefined();
      await store.touchKey("k2", T0 + 30);
      expect((await store.getKey("k2"))!.lastUsedTs).toBe(T0 + 30);
    });

    it("chains audit entries from 1, pages them newest first, and filters by time, action family and key", async () => {
      const { store } = await fresh();
      const actions = ["search", "search.photo", "searching", "person.enrol", "search", "timeline.person"];
      const written = [];
      for (const [i, action] of actions.entries())
        written.push(await store.append(entry(T0 + i * 1000, action, i % 2 ? "k2" : "k1")));
      expect(written.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(new Set(written.map((e) => e.hash)).size).toBe(6);
      const all = await allPages(4, (cursor) => store.listAudit({ limit: 4, cursor }));
      expect(all.map((e) => e.seq)).toEqual([6, 5, 4, 3, 2, 1]);
      expect(all.at(-1)).toEqual(written[0]);
      // `search` finds its dotted family, not every action that starts with the same letters.
      expect((await store.listAudit({ limit: 10, action: "search" })).items.map((e) => e.seq)).toEqual([
        5, 2, 1,
      ]);
      expect((await store.listAudit({ limit: 10, keyId: "k2" })).items.map((e) => e.seq)).toEqual([6, 4, 2]);
      const window = await store.listAudit({ limit: 10, since: T0 + 1000, until: T0 + 3000 });
      expect(window.items.map((e) => e.seq)).toEqual([4, 3, 2]);
      await expect(store.listAudit({ limit: 10, cursor: "bm9wZQ" })).rejects.toThrow(InvalidInputError);
      await expect(store.listAudit({ limit: 0 })).rejects.toThrow(InvalidInputError);
      expect(await store.verifyAudit()).toEqual({ ok: true, entries: 6, anchor: null });
    });

    it("verifies a summary exactly as it was written: key order, unicode, nesting", async () => {
      const { store } = await fresh();
      const summary = { zeta: 1, alpha: ["b", "a"], ключ: { y: null, x: 0.1 }, emoji: "👀", n: 1e21 };
      await store.append({ ...entry(T0), summary });
      expect((await store.listAudit({ limit: 1 })).items[0]!.summary).toEqual(summary);
      expect(Object.keys((await store.listAudit({ limit: 1 })).items[0]!.summary)).toEqual(
        Object.keys(summary),
      );
      expect(await store.verifyAudit()).toMatchObject({ ok: true, entries: 1 });
    });

    it("trims only the oldest run of entries, leaving an anchor the kept chain verifies from", async () => {
      const { store } = await fresh();
      // Entry 4 is old but follows a newer one (a clock stepped back): it must stay, or the chain would have a hole.
      for (const day of [0, 1, 40, 2, 50, 60]) await store.append(entry(T0 + day * DAY));
      const trim = await store.trimAuditBefore(T0 + 30 * DAY, by(T0 + 61 * DAY));
      expect(trim.removed).toBe(2);
      expect(trim.anchor).toMatchObject({ seq: 2, ts: T0 + DAY });
      const v = await store.verifyAudit();
      // The four kept entries and the trim's own entry.
      expect(v).toMatchObject({ ok: true, entries: 5, anchor: { seq: 2 } });
      const kept = (await store.listAudit({ limit: 100 })).items;
      expect(kept.map((e) => e.seq)).toEqual([7, 6, 5, 4, 3]);
      expect(kept[0]).toMatchObject({ action: "audit.trim", summary: { removed: 2, anchorSeq: 2 } });
      // Nothing older than the cut-off at the start any more: a second pass removes nothing and writes nothing.
      expect((await store.trimAuditBefore(T0 + 30 * DAY, by(T0 + 62 * DAY))).removed).toBe(0);
      expect((await store.listAudit({ limit: 100 })).items).toHaveLength(5);
    });

    it("keeps the chain going after every entry was trimmed", async () => {
      const { store } = await fresh();
      for (const day of [0, 1]) await store.append(entry(T0 + day * DAY));
      expect((await store.trimAuditBefore(T0 + 10 * DAY, by(T0 + 10 * DAY))).removed).toBe(2);
      expect(await store.verifyAudit()).toMatchObject({ ok: true, entries: 1, anchor: { seq: 2 } });
      // Later, the trim entry itself expires: the anchor moves past it and the new trim entry names the new anchor.
      const next = await store.append(entry(T0 + 50 * DAY));
      expect(next.seq).toBe(4);
      expect((await store.trimAuditBefore(T0 + 40 * DAY, by(T0 + 51 * DAY))).removed).toBe(1);
      expect(await store.verifyAudit()).toMatchObject({ ok: true, entries: 2, anchor: { seq: 3 } });
    });

    it("refuses, in the database itself, to change or delete kept entries or move the anchor back", async () => {
      const { store, sql } = await fresh();
      for (const day of [0, 1, 40]) await store.append(entry(T0 + day * DAY));
      await store.trimAuditBefore(T0 + 30 * DAY, by(T0 + 41 * DAY));
      expect((await store.verifyAudit()).ok).toBe(true);
      await expect(sql("DELETE FROM audit_log WHERE seq = 3")).rejects.toThrow(/append-only/);
      await expect(sql("UPDATE audit_log SET action = 'nothing' WHERE seq = 3")).rejects.toThrow(
        /append-only/,
      );
      await expect(sql("UPDATE audit_anchor SET seq = 1")).rejects.toThrow(/only moves forward/);
      await expect(sql("DELETE FROM audit_anchor")).rejects.toThrow(/cannot be removed/);
      // Someone with access moves the anchor over a kept entry, with that entry's true hash, to delete it: the
      // chain from the anchor still holds, but the trim entry names another anchor.
      const row3 = (await store.listAudit({ limit: 100 })).items.find((e) => e.seq === 3)!;
      await sql(`UPDATE audit_anchor SET seq = 3, hash = '${row3.hash}', ts = ${row3.ts}`);
      await sql("DELETE FROM audit_log WHERE seq = 3");
      expect(await store.verifyAudit()).toMatchObject({ ok: false, brokenAt: 4 });
    });

    it("runs retention on a schedule and records each trim in the log it trimmed", async () => {
      const { store } = await fresh();
      for (const day of [0, 1, 2]) await store.append(entry(T0 + day * DAY));
      const task = auditRetention(store, { days: 30, everyS: 3600, now: () => T0 + 32 * DAY });
      try {
        const trim = await task.tick();
        expect(trim.removed).toBe(2);
      } finally {
        await task.stop();
      }
      const items = (await store.listAudit({ limit: 10 })).items;
      expect(items.map((e) => e.action)).toEqual(["audit.trim", "search"]);
      expect(items[0]).toMatchObject({ actor: { name: "system:retention" }, ts: T0 + 32 * DAY });
      expect(items[0]!.summary).toMatchObject({ removed: 2, olderThanDays: 30, anchorSeq: 2 });
      expect(await store.verifyAudit()).toMatchObject({ ok: true, entries: 2 });
    });

    it("keeps webhooks and a delivery log per webhook: once per alert, paged newest first, removed with it", async () => {
      const { store } = await fresh();
      await store.addWebhook(hook("w2", T0 + 2, null));
      await store.addWebhook(hook("w1", T0 + 1, ["vip", "default"]));
      expect(await store.getWebhook("w1")).toEqual(hook("w1", T0 + 1, ["vip", "default"]));
      expect(await store.getWebhook("nope")).toBeUndefined();
      expect((await store.listWebhooks()).map((w) => w.id)).toEqual(["w1", "w2"]);

      for (let i = 0; i < 5; i++) expect(await store.addDelivery(delivery("w1", `a${i}`, T0 + i))).toBe(true);
      // A replayed alert: the same delivery id, refused without error.
      expect(await store.addDelivery({ ...delivery("w1", "a0", T0 + 99), payload: "other" })).toBe(false);
      expect((await store.getDelivery("w1:a0"))!.payload).toBe(JSON.stringify({ alertId: "a0" }));
      await store.addDelivery(delivery("w2", "a0", T0));
      await store.updateDelivery("w1:a1", {
        state: "delivered",
        attempts: 2,
        lastStatus: 200,
        lastError: null,
        nextAttemptTs: null,
        updatedTs: T0 + 50,
      });
      await store.updateDelivery("w1:a3", {
        state: "dead",
        attempts: 3,
        lastStatus: 500,
        lastError: "HTTP 500",
        nextAttemptTs: null,
        updatedTs: T0 + 60,
      });
      expect(await store.getDelivery("w1:a1")).toMatchObject({
        state: "delivered",
        attempts: 2,
        lastStatus: 200,
      });
      const log = await allPages(2, (cursor) => store.listDeliveries("w1", { limit: 2, cursor }));
      expect(log.map((d) => d.alertId)).toEqual(["a4", "a3", "a2", "a1", "a0"]);
      const dead = await store.listDeliveries("w1", { limit: 10, state: "dead" });
      expect(dead.items.map((d) => d.id)).toEqual(["w1:a3"]);
      expect((await store.pendingDeliveries()).map((d) => d.id)).toEqual([
        "w1:a0",
        "w2:a0",
        "w1:a2",
        "w1:a4",
      ]);

      expect(await store.removeWebhook("w1")).toBe(true);
      expect(await store.removeWebhook("w1")).toBe(false);
      expect(await store.getDelivery("w1:a2")).toBeUndefined();
      expect((await store.pendingDeliveries()).map((d) => d.id)).toEqual(["w2:a0"]);
      // A delivery for a webhook that does not exist is refused by the database.
      await expect(store.addDelivery(delivery("w9", "a0", T0))).rejects.toThrow();
    });

    it("claims each due delivery for one claimant at a time, under a lease another takes over once it lapses", async () => {
      const { store } = await fresh();
      await store.addWebhook(hook("w1"));
      for (let i = 0; i < 4; i++) await store.addDelivery(delivery("w1", `a${i}`, T0 + i));
      await store.addDelivery({ ...delivery("w1", "later", T0), nextAttemptTs: T0 + 1000 });
      const ids = (ds: WebhookDelivery[]) => ds.map((d) => d.id);

      const a = await store.claimDeliveries("A", T0 + 10, 100, 2);
      expect(ids(a)).toEqual(["w1:a0", "w1:a1"]);
      // The attempt about to be made is counted when it is claimed.
      expect(a.map((d) => d.attempts)).toEqual([1, 1]);
      // What A holds and what is not due yet are not B's.
      expect(ids(await store.claimDeliveries("B", T0 + 10, 100, 10))).toEqual(["w1:a2", "w1:a3"]);
      expect(await store.claimDeliveries("B", T0 + 50, 100, 10)).toEqual([]);
      // A renews its own leases only.
      expect((await store.renewClaims("A", ["w1:a0", "w1:a1", "w1:a2"], T0 + 300)).sort()).toEqual([
        "w1:a0",
        "w1:a1",
      ]);
      expect(await store.renewClaims("A", [], T0 + 300)).toEqual([]);

      // B stops renewing (it died): past its lease, A takes its deliveries over, a second attempt each.
      const takeover = await store.claimDeliveries("A", T0 + 150, 100, 10);
      expect(ids(takeover)).toEqual(["w1:a2", "w1:a3"]);
      expect(takeover.map((d) => d.attempts)).toEqual([2, 2]);
      // B comes back late: a failure it reports no longer counts (A's attempt decides) ...
      const failed = { lastStatus: 500, lastError: "receiver answered 500", updatedTs: T0 + 160 };
      expect(
        await store.settleDelivery("w1:a2", "B", { state: "pending", ...failed, nextAttemptTs: T0 + 200 }),
      ).toBe(false);
      // ... a success does: the receiver has the alert whoever sent it; A's outcome then records nothing.
      const ok = { lastStatus: 200, lastError: null, nextAttemptTs: null, updatedTs: T0 + 160 };
      expect(await store.settleDelivery("w1:a3", "B", { state: "delivered", ...ok })).toBe(true);
      expect(
        await store.settleDelivery("w1:a3", "A", { state: "dead", ...failed, nextAttemptTs: null }),
      ).toBe(false);
      expect(await store.getDelivery("w1:a3")).toMatchObject({
        state: "delivered",
        attempts: 2,
        lastStatus: 200,
      });

      // A's failure releases the claim: a retry due at T0 + 200, for whoever claims first then.
      expect(
        await store.settleDelivery("w1:a2", "A", { state: "pending", ...failed, nextAttemptTs: T0 + 200 }),
      ).toBe(true);
      expect(await store.getDelivery("w1:a2")).toMatchObject({
        state: "pending",
        attempts: 2,
        lastError: "receiver answered 500",
        nextAttemptTs: T0 + 200,
      });
      expect(await store.claimDeliveries("B", T0 + 199, 100, 10)).toEqual([]);
      expect(ids(await store.claimDeliveries("B", T0 + 200, 200, 10))).toEqual(["w1:a2"]);
      // A's renewed leases hold until T0 + 300; then they are anyone's.
      expect(await store.claimDeliveries("B", T0 + 299, 100, 10)).toEqual([]);
      expect(ids(await store.claimDeliveries("B", T0 + 300, 100, 10))).toEqual(["w1:a0", "w1:a1"]);
      expect(await store.countPending()).toBe(4);
      for (const id of ["w1:a0", "w1:a1", "w1:a2"])
        expect(await store.settleDelivery(id, "B", { state: "dead", ...failed, nextAttemptTs: null })).toBe(
          true,
        );
      expect(ids(await store.claimDeliveries("B", T0 + 1000, 100, 10))).toEqual(["w1:later"]);
      expect(await store.countPending()).toBe(1);
      // A delivery removed with its webhook mid-attempt: the outcome finds nothing to record.
      await store.removeWebhook("w1");
      expect(await store.settleDelivery("w1:later", "B", { state: "delivered", ...ok })).toBe(false);
      expect(await store.renewClaims("B", ["w1:later"], T0 + 2000)).toEqual([]);
    });

    it("keeps one MQTT message per alert, claimed by one publisher at a time, oldest first, taken over after a lapsed lease", async () => {
      const { store } = await fresh();
      const msg = (id: string, createdTs: number) => ({
        id,
        payload: JSON.stringify({ alertId: id }),
        cameraId: "door",
        personName: "Ann",
        createdTs,
      });
      // Every replica offers every alert: the first offer stands.
      expect(await store.addMqttMessage(msg("m2", T0 + 2))).toBe(true);
      expect(await store.addMqttMessage(msg("m1", T0 + 1))).toBe(true);
      expect(await store.addMqttMessage({ ...msg("m1", T0 + 9), payload: "a replay" })).toBe(false);
      expect(await store.addMqttMessage(msg("m3", T0 + 3))).toBe(true);

      const a = await store.claimMqttMessages("A", T0 + 10, 100, 2);
      expect(a.map((m) => [m.id, m.attempts, m.state])).toEqual([
        ["m1", 1, "pending"],
        ["m2", 1, "pending"],
      ]);
      expect(a[0]).toMatchObject({
        payload: JSON.stringify({ alertId: "m1" }),
        cameraId: "door",
        personName: "Ann",
      });
      // What A holds is not B's.
      expect((await store.claimMqttMessages("B", T0 + 20, 100, 10)).map((m) => m.id)).toEqual(["m3"]);
      expect(await store.claimMqttMessages("B", T0 + 20, 100, 10)).toEqual([]);
      // A publishes m1; A dies holding m2; the broker refuses B's m3, which is due again later.
      const sent = { state: "sent" as const, lastError: null, nextAttemptTs: null, updatedTs: T0 + 30 };
      expect(await store.settleMqttMessage("m1", "A", sent)).toBe(true);
      expect(
        await store.settleMqttMessage("m3", "B", {
          state: "pending",
          lastError: "no acknowledgement",
          nextAttemptTs: T0 + 200,
          updatedTs: T0 + 30,
        }),
      ).toBe(true);
      // Past A's lease, B takes m2 over (its second attempt); m3 waits for its time.
      const takeover = await store.claimMqttMessages("B", T0 + 110, 100, 10);
      expect(takeover.map((m) => [m.id, m.attempts])).toEqual([["m2", 2]]);
      // A, back late, cannot release what is now B's; a send still counts, whoever made it.
      expect(
        await store.settleMqttMessage("m2", "A", {
          state: "pending",
          lastError: "late",
          nextAttemptTs: T0 + 300,
          updatedTs: T0 + 120,
        }),
      ).toBe(false);
      expect(await store.settleMqttMessage("m2", "A", { ...sent, updatedTs: T0 + 120 })).toBe(true);
      expect(await store.settleMqttMessage("m2", "B", { ...sent, updatedTs: T0 + 121 })).toBe(false);
      const retried = await store.claimMqttMessages("B", T0 + 200, 100, 10);
      expect(retried.map((m) => [m.id, m.attempts, m.lastError])).toEqual([["m3", 2, "no acknowledgement"]]);
      expect(await store.settleMqttMessage("m3", "B", { ...sent, updatedTs: T0 + 210 })).toBe(true);
      expect(await store.claimMqttMessages("B", T0 + 10_000, 100, 10)).toEqual([]);
      // Sent messages are forgotten after a while; until then a replayed alert is still recognised.
      expect(await store.pruneMqttMessages(T0 + 121)).toBe(2);
      expect(await store.addMqttMessage(msg("m3", T0 + 500))).toBe(false);
      expect(await store.pruneMqttMessages(T0 + 1000)).toBe(1);
      expect(await store.addMqttMessage(msg("m3", T0 + 500))).toBe(true);
    });
  });
}

apiStoreContract("SQLite", async () => {
  const dir = tempDir("vigil-api-store-");
  const file = path.join(dir, "api.db");
  return {
    store: new SqliteApiStore(file),
    sql: async (statement) => {
      const db = new Database(file);
      try {
        db.prepare(statement).run();
      } finally {
        db.close();
      }
    },
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
});

const postgres = usePostgres("the API record store contract");
apiStoreContract(
  "PostgreSQL",
  async () => {
    const url = await postgres.database();
    return {
      store: await PostgresApiStore.open(url),
      sql: async (statement) => {
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        try {
          await client.query(statement);
        } finally {
          await client.end();
        }
      },
    };
  },
  postgres.skip,
);

describe.skipIf(postgres.skip !== undefined)("the API's PostgreSQL pool", () => {
  it("tells the log when the server drops an idle connection, and goes on with another", async () => {
    const url = await postgres.database();
    const warnings: unknown[][] = [];
    const log = { warn: (...args: unknown[]) => void warnings.push(args) } as unknown as Logger;
    const store = await openApiStore(
      testConfig({ "store.records.kind": "postgres", "store.records.url": url }),
      undefined,
      log,
    );
    try {
      await store.addKey(key("k1", T0));
      // An administrator (or a restarting server) ends every other session on the database.
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      try {
        await admin.query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        );
      } finally {
        await admin.end();
      }
      await until("the warning", () => warnings.length > 0, 10_000);
      expect(String(warnings[0]![1])).toMatch(/idle PostgreSQL connection/);
      expect((await store.getKey("k1"))!.id).toBe("k1");
    } finally {
      await store.close();
    }
  });
});
