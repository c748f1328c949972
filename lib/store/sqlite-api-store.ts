import Database from "better-sqlite3";
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import path from "node:path";
import type {
  AuditAnchor,
  AuditEntry,
  AuditQuery,
  AuditStore,
  AuditTrim,
  AuditTrimRecord,
  AuditVerification,
  NewAuditEntry,
} from "./audit-store.ts";
import { InvalidInputError } from "./errors.ts";
import type { ApiKeyRecord, KeyStore, Role, StoredApiKey } from "./key-store.ts";
import { checkLimit, type Page } from "./paging.ts";
import { keysetPage } from "./sqlite-paging.ts";
import type { DeliveryQuery, Webhook, WebhookDelivery, WebhookStore } from "./webhook-store.ts";

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
`;

interface KeyRow {
  id: string;
  name: string;
  role: string;
  hash: string;
  created_ts: number;
  revoked_ts: number | null;
  last_used_ts: number | null;
  rate_limit: number | null;
}

interface AuditRow {
  seq: number;
  ts: number;
  key_id: string | null;
  actor: string;
  role: string | null;
  action: string;
  target: string | null;
  outcome: string;
  status: number | null;
  summary: string;
  ip: string | null;
  hash: string;
}

interface WebhookRow {
  id: string;
  url: string;
  secret: string;
  watchlists: string | null;
  description: string;
  created_ts: number;
}

interface DeliveryRow {
  id: string;
  webhook_id: string;
  alert_id: string;
  state: string;
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  created_ts: number;
  updated_ts: number;
  next_attempt_ts: number | null;
  payload: string;
}

const toKey = (r: KeyRow): StoredApiKey => ({
  id: r.id,
  name: r.name,
  role: r.role as Role,
  hash: r.hash,
  createdTs: r.created_ts,
  revokedTs: r.revoked_ts,
  lastUsedTs: r.last_used_ts,
  rateLimitPerMinute: r.rate_limit,
});

const publicKey = ({ hash: _hash, ...record }: StoredApiKey): ApiKeyRecord => record;

const toAudit = (r: AuditRow): AuditEntry => ({
  seq: r.seq,
  ts: r.ts,
  actor: { keyId: r.key_id, name: r.actor, role: r.role },
  action: r.action,
  target: r.target,
  outcome: r.outcome as AuditEntry["outcome"],
  status: r.status,
  summary: JSON.parse(r.summary) as Record<string, unknown>,
  ip: r.ip,
  hash: r.hash,
});

const toWebhook = (r: WebhookRow): Webhook => ({
  id: r.id,
  url: r.url,
  secret: r.secret,
  watchlists: r.watchlists === null ? null : (JSON.parse(r.watchlists) as string[]),
  description: r.description,
  createdTs: r.created_ts,
});

const toDelivery = (r: DeliveryRow): WebhookDelivery => ({
  id: r.id,
  webhookId: r.webhook_id,
  alertId: r.alert_id,
  state: r.state as WebhookDelivery["state"],
  attempts: r.attempts,
  lastStatus: r.last_status,
  lastError: r.last_error,
  createdTs: r.created_ts,
  updatedTs: r.updated_ts,
  nextAttemptTs: r.next_attempt_ts,
  payload: r.payload,
});

/** What an entry's hash covers, in a fixed order, so the chain can be recomputed from the rows alone. */
function chainHash(previous: string, e: Omit<AuditEntry, "hash">): string {
  const body = JSON.stringify([
    e.seq,
    e.ts,
    e.actor.keyId,
    e.actor.name,
    e.actor.role,
    e.action,
    e.target,
    e.outcome,
    e.status,
    e.summary,
    e.ip,
  ]);
  return createHash("sha256").update(previous).update("\n").update(body).digest("hex");
}

const GENESIS = "0".repeat(64);
const AUDIT_TRIM = "audit.trim";

function auditCursor(seq: number) {
  return Buffer.from(`audit:${seq}`).toString("base64url");
}

function decodeAuditCursor(cursor: string): number {
  const m = /^audit:(\d+)$/.exec(Buffer.from(cursor, "base64url").toString("utf8"));
  if (!m) throw new InvalidInputError(`not an audit log cursor: ${JSON.stringify(cursor)}`);
  return Number(m[1]);
}

/**
 * Keys, the audit log and webhooks in SQLite: the embedded store's file (its own tables, its own connection),
 * or a file of their own beside a Qdrant store.
 */
export class SqliteApiStore implements KeyStore, AuditStore, WebhookStore {
  private readonly db: Database.Database;

  constructor(file: string) {
    if (file !== ":memory:") mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    this.db = new Database(file);
    this.db.pragma("journal_mode = WAL");
    // The pipeline writes the same file from another connection; wait for it rather than fail.
    this.db.pragma("busy_timeout = 5000");
    this.db.pragma("foreign_keys = ON");
    this.db.exec(SCHEMA);
  }

  close(): void {
    this.db.close();
  }

  // ---- keys ----

  async addKey(key: StoredApiKey): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO api_keys (id, name, role, hash, created_ts, revoked_ts, last_used_ts, rate_limit)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        key.id,
        key.name,
        key.role,
        key.hash,
        key.createdTs,
        key.revokedTs,
        key.lastUsedTs,
        key.rateLimitPerMinute,
      );
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
    const seq = (last?.seq ?? 0) + 1;
    const withSeq = { ...e, seq };
    const hash = chainHash(last?.hash ?? GENESIS, withSeq);
    this.db
      .prepare(
        `INSERT INTO audit_log (seq, ts, key_id, actor, role, action, target, outcome, status, summary, ip, hash)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        seq,
        e.ts,
        e.actor.keyId,
        e.actor.name,
        e.actor.role,
        e.action,
        e.target,
        e.outcome,
        e.status,
        JSON.stringify(e.summary),
        e.ip,
        hash,
      );
    return { ...withSeq, hash };
  }

  async listAudit(query: AuditQuery): Promise<Page<AuditEntry>> {
    const limit = checkLimit(query.limit);
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (query.cursor !== undefined) {
      where.push("seq < ?");
      args.push(decodeAuditCursor(query.cursor));
    }
    if (query.since !== undefined) {
      where.push("ts >= ?");
      args.push(query.since);
    }
    if (query.until !== undefined) {
      where.push("ts <= ?");
      args.push(query.until);
    }
    if (query.action !== undefined) {
      // `search` also finds `search.photo`: actions are dotted families.
      where.push("(action = ? OR action LIKE ? ESCAPE '\\')");
      args.push(query.action, `${query.action.replace(/[\\%_]/g, (c) => `\\${c}`)}.%`);
    }
    if (query.keyId !== undefined) {
      where.push("key_id = ?");
      args.push(query.keyId);
    }
    const rows = this.db
      .prepare(
        `SELECT * FROM audit_log ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY seq DESC LIMIT ?`,
      )
      .all(...args, limit + 1) as AuditRow[];
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
      // The trim is written into the chain it shortened, naming the anchor: an anchor moved by hand no longer
      // matches the newest trim entry, which itself cannot be changed without breaking the chain.
      this.appendNow({
        ts: by.ts,
        actor: by.actor,
        action: AUDIT_TRIM,
        target: null,
        outcome: "ok",
        status: null,
        summary: { ...by.summary, removed, anchorSeq: through.seq, anchorHash: through.hash },
        ip: null,
      });
      return { removed, anchor: through };
    });
    return trim.immediate(before);
  }

  async verifyAudit(): Promise<AuditVerification> {
    const anchor = this.auditAnchor();
    let previous = anchor?.hash ?? GENESIS;
    let entries = 0;
    let expectedSeq = (anchor?.seq ?? 0) + 1;
    for (const row of this.db
      .prepare("SELECT * FROM audit_log ORDER BY seq")
      .iterate() as Iterable<AuditRow>) {
      const entry = toAudit(row);
      const { hash, ...rest } = entry;
      if (entry.seq !== expectedSeq || chainHash(previous, rest) !== hash)
        return { ok: false, entries, brokenAt: entry.seq, anchor: anchor ?? null };
      previous = hash;
      expectedSeq++;
      entries++;
    }
    if (anchor) {
      const trim = this.db
        .prepare("SELECT seq, summary FROM audit_log WHERE action = ? ORDER BY seq DESC LIMIT 1")
        .get(AUDIT_TRIM) as { seq: number; summary: string } | undefined;
      const said = trim ? (JSON.parse(trim.summary) as { anchorSeq?: number; anchorHash?: string }) : {};
      if (said.anchorSeq !== anchor.seq || said.anchorHash !== anchor.hash)
        return { ok: false, entries, brokenAt: trim?.seq ?? anchor.seq + 1, anchor };
    }
    return { ok: true, entries, anchor: anchor ?? null };
  }

  // ---- webhooks ----

  async addWebhook(w: Webhook): Promise<void> {
    this.db
      .prepare(
        "INSERT INTO webhooks (id, url, secret, watchlists, description, created_ts) VALUES (?, ?, ?, ?, ?, ?)",
      )
      .run(
        w.id,
        w.url,
        w.secret,
        w.watchlists === null ? null : JSON.stringify(w.watchlists),
        w.description,
        w.createdTs,
      );
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
        `INSERT OR IGNORE INTO webhook_deliveries (id, webhook_id, alert_id, state, attempts, last_status, last_error,
           created_ts, updated_ts, next_attempt_ts, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        d.id,
        d.webhookId,
        d.alertId,
        d.state,
        d.attempts,
        d.lastStatus,
        d.lastError,
        d.createdTs,
        d.updatedTs,
        d.nextAttemptTs,
        d.payload,
      );
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
}
