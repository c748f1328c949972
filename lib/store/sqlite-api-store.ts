import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import path from "node:path";
import type { ApiStore } from "./api-store.ts";
import {
  AUDIT_COLUMNS,
  auditValues,
  DELIVERY_COLUMNS,
  deliveryValues,
  KEY_COLUMNS,
  keyValues,
  publicKey,
  toAudit,
  toDelivery,
  toKey,
  toWebhook,
  WEBHOOK_COLUMNS,
  webhookValues,
  type AuditRow,
  type DeliveryRow,
  type KeyRow,
  type WebhookRow,
  CLAIMABLE,
  MQTT_COLUMNS,
  newMqttValues,
  toMqttMessage,
  type MqttRow,
} from "./api-rows.ts";
import {
  AUDIT_TRIM,
  auditConditions,
  auditCursor,
  nextEntry,
  trimEntry,
  verifyChain,
} from "./audit-chain.ts";
import type {
  AuditAnchor,
  AuditEntry,
  AuditQuery,
  AuditTrim,
  AuditTrimRecord,
  AuditVerification,
  NewAuditEntry,
} from "./audit-store.ts";
import type { ApiKeyRecord, StoredApiKey } from "./key-store.ts";
import type { MqttMessage, MqttOutcome, NewMqttMessage } from "./mqtt-outbox.ts";
import { checkLimit, type Page } from "./paging.ts";
import { SqlParams, whereClause } from "./sql-params.ts";
import { keysetPage } from "./sqlite-paging.ts";
import type { DeliveryOutcome, DeliveryQuery, Webhook, WebhookDelivery } from "./webhook-store.ts";

// Tables of their own beside the embedded store's (same file, separate connection): the API's state is
// additive and never touches the tables the stages write.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS api_keys (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, hash TEXT NOT NULL, created_ts INTEGER NOT NULL,
  revoked_ts INTEGER, last_used_ts INTEGER, rate_limit INTEGER);
CREATE TABLE IF NOT EXISTS audit_log (
  seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, key_id TEXT, actor TEXT NOT NULL, role TEXT,
  action TEXT NOT NULL, target TEXT, outcome TEXT NOT NULL, status INTEGER, summary TEXT NOT NULL, ip TEXT,
  hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_log_ts ON audit_log(ts);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
-- Retention trims the oldest entries, and only those: the anchor (the last trimmed entry's seq and hash) moves
-- forward first, and a row at or above it can never be deleted, so the chain still verifies from the anchor.
CREATE TABLE IF NOT EXISTS audit_anchor (
  id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL, ts INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS audit_anchor_forward BEFORE UPDATE ON audit_anchor WHEN NEW.seq < OLD.seq
  BEGIN SELECT RAISE(ABORT, 'the audit anchor only moves forward'); END;
CREATE TRIGGER IF NOT EXISTS audit_anchor_no_delete BEFORE DELETE ON audit_anchor
  BEGIN SELECT RAISE(ABORT, 'the audit anchor cannot be removed'); END;
DROP TRIGGER IF EXISTS audit_log_no_delete;
CREATE TRIGGER IF NOT EXISTS audit_log_trim_only BEFORE DELETE ON audit_log
  WHEN OLD.seq > COALESCE((SELECT seq FROM audit_anchor WHERE id = 1), 0)
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only; only entries behind the anchor are trimmed'); END;
CREATE TABLE IF NOT EXISTS webhooks (
  id TEXT PRIMARY KEY, url TEXT NOT NULL, secret TEXT NOT NULL, watchlists TEXT, description TEXT NOT NULL,
  created_ts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
  id TEXT PRIMARY KEY, webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
  alert_id TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL, last_status INTEGER, last_error TEXT,
  created_ts INTEGER NOT NULL, updated_ts INTEGER NOT NULL, next_attempt_ts INTEGER, payload TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS webhook_deliveries_hook ON webhook_deliveries(webhook_id, created_ts, id);
CREATE INDEX IF NOT EXISTS webhook_deliveries_state ON webhook_deliveries(state, next_attempt_ts);
CREATE TABLE IF NOT EXISTS mqtt_outbox (
  id TEXT PRIMARY KEY, payload TEXT NOT NULL, camera_id TEXT NOT NULL, person_name TEXT NOT NULL,
  state TEXT NOT NULL, attempts INTEGER NOT NULL, last_error TEXT, created_ts INTEGER NOT NULL,
  updated_ts INTEGER NOT NULL, next_attempt_ts INTEGER, claimed_by TEXT, lease_until INTEGER);
CREATE INDEX IF NOT EXISTS mqtt_outbox_due ON mqtt_outbox(state, next_attempt_ts);
CREATE INDEX IF NOT EXISTS mqtt_outbox_sent ON mqtt_outbox(state, updated_ts);
`;

/**
 * Keys, the audit log and webhooks in SQLite: the embedded store's file (its own tables, its own connection),
 * or a file of their own beside a Qdrant store.
 */
export class SqliteApiStore implements ApiStore {
  private readonly db: Database.Database;

  constructor(file: string) {
    if (file !== ":memory:") mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    this.db = new Database(file);
    this.db.pragma("journal_mode = WAL");
    // The pipeline writes the same file from another connection; wait for it rather than fail.
    this.db.pragma("busy_timeout = 5000");
    this.db.pragma("foreign_keys = ON");
    this.db.exec(SCHEMA);
    // Files written before deliveries were claimed get the claim's columns (the same as PostgreSQL's).
    const columns = new Set(
      (this.db.prepare("PRAGMA table_info(webhook_deliveries)").all() as { name: string }[]).map(
        (c) => c.name,
      ),
    );
    if (!columns.has("claimed_by")) this.db.exec("ALTER TABLE webhook_deliveries ADD COLUMN claimed_by TEXT");
    if (!columns.has("lease_until"))
      this.db.exec("ALTER TABLE webhook_deliveries ADD COLUMN lease_until INTEGER");
  }

  close(): void {
    this.db.close();
  }

  async healthy(): Promise<boolean> {
    return this.db.open;
  }

  // ---- keys ----

  async addKey(key: StoredApiKey): Promise<void> {
    this.db
      .prepare(`INSERT INTO api_keys (${KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(...keyValues(key));
  }

  async getKey(id: string): Promise<StoredApiKey | undefined> {
    const row = this.db.prepare("SELECT * FROM api_keys WHERE id = ?").get(id) as KeyRow | undefined;
    return row ? toKey(row) : undefined;
  }

  async listKeys(): Promise<ApiKeyRecord[]> {
    const rows = this.db.prepare("SELECT * FROM api_keys ORDER BY created_ts, id").all() as KeyRow[];
    return rows.map((r) => publicKey(toKey(r)));
  }

  async revokeKey(id: string, ts: number): Promise<ApiKeyRecord | undefined> {
    this.db.prepare("UPDATE api_keys SET revoked_ts = ? WHERE id = ? AND revoked_ts IS NULL").run(ts, id);
    const key = await this.getKey(id);
    return key ? publicKey(key) : undefined;
  }

  async touchKey(id: string, ts: number): Promise<void> {
    this.db.prepare("UPDATE api_keys SET last_used_ts = ? WHERE id = ?").run(ts, id);
  }

  // ---- audit log ----

  async append(entry: NewAuditEntry): Promise<AuditEntry> {
    // IMMEDIATE: the CLI and the API may append at once; the chain needs the true previous entry.
    return this.db.transaction((e: NewAuditEntry) => this.appendNow(e)).immediate(entry);
  }

  /** Appends inside the caller's transaction. */
  private appendNow(e: NewAuditEntry): AuditEntry {
    const last =
      (this.db.prepare("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").get() as
        { seq: number; hash: string } | undefined) ?? this.auditAnchor();
    const entry = nextEntry(last, e);
    this.db
      .prepare(`INSERT INTO audit_log (${AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(...auditValues(entry));
    return entry;
  }

  async listAudit(query: AuditQuery): Promise<Page<AuditEntry>> {
    const limit = checkLimit(query.limit);
    const params = new SqlParams("?");
    const where = auditConditions(query, params);
    const rows = this.db
      .prepare(
        `SELECT * FROM audit_log ${whereClause(where)} ORDER BY seq DESC LIMIT ${params.add(limit + 1)}`,
      )
      .all(...params.values) as AuditRow[];
    const items = rows.slice(0, limit).map(toAudit);
    return { items, nextCursor: rows.length > limit ? auditCursor(items.at(-1)!.seq) : null };
  }

  private auditAnchor(): AuditAnchor | undefined {
    return this.db.prepare("SELECT seq, hash, ts FROM audit_anchor WHERE id = 1").get() as
      AuditAnchor | undefined;
  }

  async trimAuditBefore(before: number, by: AuditTrimRecord): Promise<AuditTrim> {
    const trim = this.db.transaction((cutoff: number): AuditTrim => {
      // The oldest run of entries older than the cut-off, ending before the first newer one: entries are trimmed
      // from the start only, so a clock that stepped back never leaves a hole in the chain.
      const firstKept = this.db
        .prepare("SELECT MIN(seq) AS seq FROM audit_log WHERE ts >= ?")
        .get(cutoff) as { seq: number | null };
      const through = this.db
        .prepare("SELECT seq, hash, ts FROM audit_log WHERE seq < ? ORDER BY seq DESC LIMIT 1")
        .get(firstKept.seq ?? Number.MAX_SAFE_INTEGER) as AuditAnchor | undefined;
      if (!through) return { removed: 0, anchor: this.auditAnchor() ?? null };
      this.db
        .prepare(
          `INSERT INTO audit_anchor (id, seq, hash, ts) VALUES (1, ?, ?, ?)
           ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, ts = excluded.ts`,
        )
        .run(through.seq, through.hash, through.ts);
      const removed = this.db.prepare("DELETE FROM audit_log WHERE seq <= ?").run(through.seq).changes;
      // The trim is written into the chain it shortened, naming the anchor it left.
      this.appendNow(trimEntry(by, removed, through));
      return { removed, anchor: through };
    });
    return trim.immediate(before);
  }

  async verifyAudit(): Promise<AuditVerification> {
    const rows = this.db.prepare("SELECT * FROM audit_log ORDER BY seq").iterate() as Iterable<AuditRow>;
    return verifyChain(
      this.auditAnchor(),
      (function* () {
        for (const row of rows) yield toAudit(row);
      })(),
      async () => {
        const row = this.db
          .prepare("SELECT * FROM audit_log WHERE action = ? ORDER BY seq DESC LIMIT 1")
          .get(AUDIT_TRIM) as AuditRow | undefined;
        return row ? toAudit(row) : undefined;
      },
    );
  }

  // ---- webhooks ----

  async addWebhook(w: Webhook): Promise<void> {
    this.db
      .prepare(`INSERT INTO webhooks (${WEBHOOK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)`)
      .run(...webhookValues(w));
  }

  async getWebhook(id: string): Promise<Webhook | undefined> {
    const row = this.db.prepare("SELECT * FROM webhooks WHERE id = ?").get(id) as WebhookRow | undefined;
    return row ? toWebhook(row) : undefined;
  }

  async listWebhooks(): Promise<Webhook[]> {
    return (this.db.prepare("SELECT * FROM webhooks ORDER BY created_ts, id").all() as WebhookRow[]).map(
      toWebhook,
    );
  }

  async removeWebhook(id: string): Promise<boolean> {
    return this.db.prepare("DELETE FROM webhooks WHERE id = ?").run(id).changes > 0;
  }

  async addDelivery(d: WebhookDelivery): Promise<boolean> {
    const result = this.db
      .prepare(
        `INSERT OR IGNORE INTO webhook_deliveries (${DELIVERY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(...deliveryValues(d));
    return result.changes > 0;
  }

  async updateDelivery(
    id: string,
    p: Pick<
      WebhookDelivery,
      "state" | "attempts" | "lastStatus" | "lastError" | "nextAttemptTs" | "updatedTs"
    >,
  ): Promise<void> {
    this.db
      .prepare(
        `UPDATE webhook_deliveries SET state = ?, attempts = ?, last_status = ?, last_error = ?, next_attempt_ts = ?,
           updated_ts = ? WHERE id = ?`,
      )
      .run(p.state, p.attempts, p.lastStatus, p.lastError, p.nextAttemptTs, p.updatedTs, id);
  }

  async getDelivery(id: string): Promise<WebhookDelivery | undefined> {
    const row = this.db.prepare("SELECT * FROM webhook_deliveries WHERE id = ?").get(id) as
      DeliveryRow | undefined;
    return row ? toDelivery(row) : undefined;
  }

  async listDeliveries(webhookId: string, query: DeliveryQuery): Promise<Page<WebhookDelivery>> {
    const where = ["webhook_id = ?"];
    const params: (string | number)[] = [webhookId];
    if (query.state) {
      where.push("state = ?");
      params.push(query.state);
    }
    return keysetPage(
      this.db,
      { from: "SELECT * FROM webhook_deliveries", tsColumn: "created_ts", where, params, request: query },
      toDelivery,
      (d: WebhookDelivery) => ({ ts: d.createdTs, id: d.id }),
    );
  }

  async pendingDeliveries(): Promise<WebhookDelivery[]> {
    return (
      this.db
        .prepare("SELECT * FROM webhook_deliveries WHERE state = 'pending' ORDER BY created_ts, id")
        .all() as DeliveryRow[]
    ).map(toDelivery);
  }

  async countPending(): Promise<number> {
    return (
      this.db.prepare("SELECT count(*) AS n FROM webhook_deliveries WHERE state = 'pending'").get() as {
        n: number;
      }
    ).n;
  }

  async claimDeliveries(
    claimant: string,
    now: number,
    leaseMs: number,
    limit: number,
  ): Promise<WebhookDelivery[]> {
    return this.claim<DeliveryRow>(
      "webhook_deliveries",
      "COALESCE(next_attempt_ts, 0), id",
      claimant,
      now,
      leaseMs,
      limit,
    ).map(toDelivery);
  }

  async renewClaims(claimant: string, ids: readonly string[], leaseUntil: number): Promise<string[]> {
    if (ids.length === 0) return [];
    const rows = this.db
      .prepare(
        `UPDATE webhook_deliveries SET lease_until = ?
         WHERE claimed_by = ? AND state = 'pending' AND id IN (SELECT value FROM json_each(?)) RETURNING id`,
      )
      .all(leaseUntil, claimant, JSON.stringify(ids)) as { id: string }[];
    return rows.map((r) => r.id);
  }

  async settleDelivery(id: string, claimant: string, o: DeliveryOutcome): Promise<boolean> {
    const result = this.db
      .prepare(
        `UPDATE webhook_deliveries SET state = ?, last_status = ?, last_error = ?, next_attempt_ts = ?, updated_ts = ?,
           claimed_by = NULL, lease_until = NULL
         WHERE id = ? AND state = 'pending' AND (claimed_by = ? OR ? = 'delivered')`,
      )
      .run(o.state, o.lastStatus, o.lastError, o.nextAttemptTs, o.updatedTs, id, claimant, o.state);
    return result.changes > 0;
  }

  // ---- the MQTT outbox ----

  async addMqttMessage(m: NewMqttMessage): Promise<boolean> {
    const result = this.db
      .prepare(
        `INSERT INTO mqtt_outbox (${MQTT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
      )
      .run(...newMqttValues(m));
    return result.changes > 0;
  }

  async claimMqttMessages(
    claimant: string,
    now: number,
    leaseMs: number,
    limit: number,
  ): Promise<MqttMessage[]> {
    return this.claim<MqttRow>("mqtt_outbox", "created_ts, id", claimant, now, leaseMs, limit).map(
      toMqttMessage,
    );
  }

  async settleMqttMessage(id: string, claimant: string, o: MqttOutcome): Promise<boolean> {
    const result = this.db
      .prepare(
        `UPDATE mqtt_outbox SET state = ?, last_error = ?, next_attempt_ts = ?, updated_ts = ?,
           claimed_by = NULL, lease_until = NULL
         WHERE id = ? AND state = 'pending' AND (claimed_by = ? OR ? = 'sent')`,
      )
      .run(o.state, o.lastError, o.nextAttemptTs, o.updatedTs, id, claimant, o.state);
    return result.changes > 0;
  }

  async pruneMqttMessages(before: number): Promise<number> {
    return this.db.prepare("DELETE FROM mqtt_outbox WHERE state = 'sent' AND updated_ts < ?").run(before)
      .changes;
  }

  /**
   * Leases due rows of `table` to `claimant`, in `order`. One writer at a time in SQLite (IMMEDIATE): the select
   * and the update cannot interleave with another process's claim on the same file, which is what SKIP LOCKED
   * gives PostgreSQL.
   */
  private claim<R>(
    table: string,
    order: string,
    claimant: string,
    now: number,
    leaseMs: number,
    limit: number,
  ): R[] {
    return this.db
      .transaction(() => {
        const due = this.db
          .prepare(`SELECT id FROM ${table} WHERE ${CLAIMABLE("@now")} ORDER BY ${order} LIMIT @limit`)
          .all({ now, limit }) as { id: string }[];
        const take = this.db.prepare(
          `UPDATE ${table} SET claimed_by = ?, lease_until = ?, attempts = attempts + 1, updated_ts = ?
           WHERE id = ? RETURNING *`,
        );
        return due.map((r) => take.get(claimant, now + leaseMs, now, r.id) as R);
      })
      .immediate();
  }
}
