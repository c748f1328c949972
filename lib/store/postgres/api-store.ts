import type pg from "pg";
import type { ApiStore } from "../api-store.ts";
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
} from "../api-rows.ts";
import {
  AUDIT_TRIM,
  auditConditions,
  auditCursor,
  nextEntry,
  trimEntry,
  verifyChain,
} from "../audit-chain.ts";
import type {
  AuditAnchor,
  AuditEntry,
  AuditQuery,
  AuditTrim,
  AuditTrimRecord,
  AuditVerification,
  NewAuditEntry,
} from "../audit-store.ts";
import { keysetResult, keysetStatement } from "../keyset.ts";
import type { ApiKeyRecord, StoredApiKey } from "../key-store.ts";
import type { MqttMessage, MqttOutcome, NewMqttMessage } from "../mqtt-outbox.ts";
import { checkLimit, type Page } from "../paging.ts";
import { SqlParams, whereClause } from "../sql-params.ts";
import type { DeliveryOutcome, DeliveryQuery, Webhook, WebhookDelivery } from "../webhook-store.ts";
import { LOCKS } from "./locks.ts";
import { migrate } from "./migrations.ts";
import { answers, inTransaction, openPool, type PoolOptions } from "./pool.ts";
import { RECORD_MIGRATIONS, RECORDS_SCHEMA } from "./record-migrations.ts";

/** `$1, $2, … $n`: the markers of an insert of n columns. */
const markers = (n: number) => Array.from({ length: n }, (_, i) => `$${i + 1}`).join(", ");

/** Audit entries read per query while verifying: a long log is walked in pages, not held in memory at once. */
const VERIFY_PAGE = 1000;

/**
 * Keys, the audit log and webhooks in PostgreSQL, for several API replicas sharing them. The same behaviour as
 * the SQLite store (one contract suite runs against both); what differs is how writers meet: an audit append
 * takes a transaction-scoped advisory lock (LOCKS.auditChain), so appends from every replica and every CLI form
 * one chain, each entry hashed over the true previous one.
 */
export class PostgresApiStore implements ApiStore {
  private constructor(private readonly pool: pg.Pool) {}

  /** Connects (failing with the address when it cannot) and brings the schema up to date, as every start does. */
  static async open(url: string, options: PoolOptions = {}): Promise<PostgresApiStore> {
    const pool = await openPool(url, options);
    try {
      await migrate(pool, RECORDS_SCHEMA, RECORD_MIGRATIONS);
    } catch (err) {
      await pool.end();
      throw err;
    }
    return new PostgresApiStore(pool);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  async healthy(): Promise<boolean> {
    return answers(this.pool);
  }

  private async rows<Row extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<Row[]> {
    return (await this.pool.query<Row>(sql, params)).rows;
  }

  // ---- keys ----

  async addKey(key: StoredApiKey): Promise<void> {
    await this.pool.query(`INSERT INTO api_keys (${KEY_COLUMNS}) VALUES (${markers(8)})`, keyValues(key));
  }

  async getKey(id: string): Promise<StoredApiKey | undefined> {
    const [row] = await this.rows<KeyRow>("SELECT * FROM api_keys WHERE id = $1", [id]);
    return row ? toKey(row) : undefined;
  }

  async listKeys(): Promise<ApiKeyRecord[]> {
    const rows = await this.rows<KeyRow>("SELECT * FROM api_keys ORDER BY created_ts, id");
    return rows.map((r) => publicKey(toKey(r)));
  }

  async revokeKey(id: string, ts: number): Promise<ApiKeyRecord | undefined> {
    // One statement: the first revocation stands, and the key comes back as it is now either way.
    const [row] = await this.rows<KeyRow>(
      `UPDATE api_keys SET revoked_ts = COALESCE(revoked_ts, $2) WHERE id = $1 RETURNING *`,
      [id, ts],
    );
    return row ? publicKey(toKey(row)) : undefined;
  }

  async touchKey(id: string, ts: number): Promise<void> {
    await this.pool.query("UPDATE api_keys SET last_used_ts = $2 WHERE id = $1", [id, ts]);
  }

  // ---- audit log ----

  async append(entry: NewAuditEntry): Promise<AuditEntry> {
    return inTransaction(this.pool, async (client) => {
      await lockAuditChain(client);
      return appendLocked(client, entry);
    });
  }

  async listAudit(query: AuditQuery): Promise<Page<AuditEntry>> {
    const limit = checkLimit(query.limit);
    const params = new SqlParams("$n");
    const where = auditConditions(query, params);
    const rows = await this.rows<AuditRow>(
      `SELECT * FROM audit_log ${whereClause(where)} ORDER BY seq DESC LIMIT ${params.add(limit + 1)}`,
      params.values,
    );
    const items = rows.slice(0, limit).map(toAudit);
    return { items, nextCursor: rows.length > limit ? auditCursor(items.at(-1)!.seq) : null };
  }

  async trimAuditBefore(before: number, by: AuditTrimRecord): Promise<AuditTrim> {
    return inTransaction(this.pool, async (client) => {
      await lockAuditChain(client);
      // The oldest run of entries older than the cut-off, ending before the first newer one: entries are trimmed
      // from the start only, so a clock that stepped back never leaves a hole in the chain.
      const [through] = (
        await client.query<AuditAnchor>(
          `SELECT seq, hash, ts FROM audit_log
           WHERE seq < COALESCE((SELECT min(seq) FROM audit_log WHERE ts >= $1), 9223372036854775807)
           ORDER BY seq DESC LIMIT 1`,
          [before],
        )
      ).rows;
      if (!through) return { removed: 0, anchor: (await anchorOf(client)) ?? null };
      await client.query(
        `INSERT INTO audit_anchor (id, seq, hash, ts) VALUES (1, $1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, ts = excluded.ts`,
        [through.seq, through.hash, through.ts],
      );
      const removed =
        (await client.query("DELETE FROM audit_log WHERE seq <= $1", [through.seq])).rowCount ?? 0;
      // The trim is written into the chain it shortened, naming the anchor it left.
      await appendLocked(client, trimEntry(by, removed, through));
      return { removed, anchor: through };
    });
  }

  async verifyAudit(): Promise<AuditVerification> {
    // One snapshot for the whole walk: a trim committed meanwhile must not look like a hole in the chain.
    return inTransaction(
      this.pool,
      async (client) => {
        async function* entries() {
          for (let after = -1; ;) {
            const { rows } = await client.query<AuditRow>(
              "SELECT * FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
              [after, VERIFY_PAGE],
            );
            for (const row of rows) yield toAudit(row);
            if (rows.length < VERIFY_PAGE) return;
            after = rows.at(-1)!.seq;
          }
        }
        return verifyChain(await anchorOf(client), entries(), async () => {
          const { rows } = await client.query<AuditRow>(
            "SELECT * FROM audit_log WHERE action = $1 ORDER BY seq DESC LIMIT 1",
            [AUDIT_TRIM],
          );
          return rows[0] ? toAudit(rows[0]) : undefined;
        });
      },
      "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    );
  }

  // ---- webhooks ----

  async addWebhook(w: Webhook): Promise<void> {
    await this.pool.query(
      `INSERT INTO webhooks (${WEBHOOK_COLUMNS}) VALUES (${markers(6)})`,
      webhookValues(w),
    );
  }

  async getWebhook(id: string): Promise<Webhook | undefined> {
    const [row] = await this.rows<WebhookRow>("SELECT * FROM webhooks WHERE id = $1", [id]);
    return row ? toWebhook(row) : undefined;
  }

  async listWebhooks(): Promise<Webhook[]> {
    return (await this.rows<WebhookRow>("SELECT * FROM webhooks ORDER BY created_ts, id")).map(toWebhook);
  }

  async removeWebhook(id: string): Promise<boolean> {
    return ((await this.pool.query("DELETE FROM webhooks WHERE id = $1", [id])).rowCount ?? 0) > 0;
  }

  async addDelivery(d: WebhookDelivery): Promise<boolean> {
    const result = await this.pool.query(
      `INSERT INTO webhook_deliveries (${DELIVERY_COLUMNS}) VALUES (${markers(11)}) ON CONFLICT (id) DO NOTHING`,
      deliveryValues(d),
    );
    return (result.rowCount ?? 0) > 0;
  }

  async updateDelivery(
    id: string,
    p: Pick<
      WebhookDelivery,
      "state" | "attempts" | "lastStatus" | "lastError" | "nextAttemptTs" | "updatedTs"
    >,
  ): Promise<void> {
    await this.pool.query(
      `UPDATE webhook_deliveries SET state = $2, attempts = $3, last_status = $4, last_error = $5,
         next_attempt_ts = $6, updated_ts = $7 WHERE id = $1`,
      [id, p.state, p.attempts, p.lastStatus, p.lastError, p.nextAttemptTs, p.updatedTs],
    );
  }

  async getDelivery(id: string): Promise<WebhookDelivery | undefined> {
    const [row] = await this.rows<DeliveryRow>("SELECT * FROM webhook_deliveries WHERE id = $1", [id]);
    return row ? toDelivery(row) : undefined;
  }

  async listDeliveries(webhookId: string, query: DeliveryQuery): Promise<Page<WebhookDelivery>> {
    const params = new SqlParams("$n");
    const where = [`webhook_id = ${params.add(webhookId)}`];
    if (query.state) where.push(`state = ${params.add(query.state)}`);
    const { sql, limit } = keysetStatement(
      { from: "SELECT * FROM webhook_deliveries", tsColumn: "created_ts", where, request: query },
      params,
    );
    return keysetResult(await this.rows<DeliveryRow>(sql, params.values), limit, toDelivery, (d) => ({
      ts: d.createdTs,
      id: d.id,
    }));
  }

  async pendingDeliveries(): Promise<WebhookDelivery[]> {
    return (
      await this.rows<DeliveryRow>(
        "SELECT * FROM webhook_deliveries WHERE state = 'pending' ORDER BY created_ts, id",
      )
    ).map(toDelivery);
  }

  async countPending(): Promise<number> {
    const [row] = await this.rows<{ n: number }>(
      "SELECT count(*)::int AS n FROM webhook_deliveries WHERE state = 'pending'",
    );
    return row!.n;
  }

  async claimDeliveries(
    claimant: string,
    now: number,
    leaseMs: number,
    limit: number,
  ): Promise<WebhookDelivery[]> {
    // SKIP LOCKED: replicas claiming at once each take rows the others have not locked, instead of queueing
    // behind them; the lease (not the row lock, which ends with this statement) keeps them off until it lapses.
    const rows = await this.claim<DeliveryRow>("webhook_deliveries", "COALESCE(next_attempt_ts, 0), id", [
      claimant,
      now,
      leaseMs,
      limit,
    ]);
    return rows
      .map(toDelivery)
      .sort(
        (a, b) => (a.nextAttemptTs ?? 0) - (b.nextAttemptTs ?? 0) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
      );
  }

  async renewClaims(claimant: string, ids: readonly string[], leaseUntil: number): Promise<string[]> {
    if (ids.length === 0) return [];
    const rows = await this.rows<{ id: string }>(
      `UPDATE webhook_deliveries SET lease_until = $3
       WHERE claimed_by = $1 AND state = 'pending' AND id = ANY($2::text[]) RETURNING id`,
      [claimant, [...ids], leaseUntil],
    );
    return rows.map((r) => r.id);
  }

  async settleDelivery(id: string, claimant: string, o: DeliveryOutcome): Promise<boolean> {
    const result = await this.pool.query(
      `UPDATE webhook_deliveries SET state = $3, last_status = $4, last_error = $5, next_attempt_ts = $6,
         updated_ts = $7, claimed_by = NULL, lease_until = NULL
       WHERE id = $1 AND state = 'pending' AND (claimed_by = $2 OR $3 = 'delivered')`,
      [id, claimant, o.state, o.lastStatus, o.lastError, o.nextAttemptTs, o.updatedTs],
    );
    return (result.rowCount ?? 0) > 0;
  }

  // ---- the MQTT outbox ----

  async addMqttMessage(m: NewMqttMessage): Promise<boolean> {
    const result = await this.pool.query(
      `INSERT INTO mqtt_outbox (${MQTT_COLUMNS}) VALUES (${markers(10)}) ON CONFLICT (id) DO NOTHING`,
      newMqttValues(m),
    );
    return (result.rowCount ?? 0) > 0;
  }

  async claimMqttMessages(
    claimant: string,
    now: number,
    leaseMs: number,
    limit: number,
  ): Promise<MqttMessage[]> {
    const rows = await this.claim<MqttRow>("mqtt_outbox", "created_ts, id", [claimant, now, leaseMs, limit]);
    return rows.map(toMqttMessage).sort((a, b) => a.createdTs - b.createdTs || (a.id < b.id ? -1 : 1));
  }

  async settleMqttMessage(id: string, claimant: string, o: MqttOutcome): Promise<boolean> {
    const result = await this.pool.query(
      `UPDATE mqtt_outbox SET state = $3, last_error = $4, next_attempt_ts = $5, updated_ts = $6,
         claimed_by = NULL, lease_until = NULL
       WHERE id = $1 AND state = 'pending' AND (claimed_by = $2 OR $3 = 'sent')`,
      [id, claimant, o.state, o.lastError, o.nextAttemptTs, o.updatedTs],
    );
    return (result.rowCount ?? 0) > 0;
  }

  async pruneMqttMessages(before: number): Promise<number> {
    const result = await this.pool.query("DELETE FROM mqtt_outbox WHERE state = 'sent' AND updated_ts < $1", [
      before,
    ]);
    return result.rowCount ?? 0;
  }

  /**
   * Leases due rows of `table` to a claimant ($1) at $2 for $3 ms, at most $4 of them, in `order`. SKIP LOCKED:
   * replicas claiming at once each take rows the others have not locked, instead of queueing behind them; the
   * lease (not the row lock, which ends with this statement) keeps the others off until it lapses.
   */
  private claim<R extends pg.QueryResultRow>(table: string, order: string, params: unknown[]): Promise<R[]> {
    return this.rows<R>(
      `WITH due AS (
         SELECT id FROM ${table} WHERE ${CLAIMABLE("$2")} ORDER BY ${order} LIMIT $4 FOR UPDATE SKIP LOCKED)
       UPDATE ${table} d
       SET claimed_by = $1, lease_until = $2::bigint + $3::bigint, attempts = d.attempts + 1, updated_ts = $2
       FROM due WHERE d.id = due.id
       RETURNING d.*`,
      params,
    );
  }
}

/** Waits for, then holds until the transaction ends, the right to extend the audit chain. */
async function lockAuditChain(client: pg.PoolClient): Promise<void> {
  await client.query("SELECT pg_advisory_xact_lock($1)", [LOCKS.auditChain]);
}

async function anchorOf(client: pg.PoolClient): Promise<AuditAnchor | undefined> {
  return (await client.query<AuditAnchor>("SELECT seq, hash, ts FROM audit_anchor WHERE id = 1")).rows[0];
}

/** Appends after the newest entry (or the anchor of a log trimmed empty); the caller holds the chain lock. */
async function appendLocked(client: pg.PoolClient, e: NewAuditEntry): Promise<AuditEntry> {
  const [last] = (
    await client.query<{ seq: number; hash: string }>(
      "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
    )
  ).rows;
  const entry = nextEntry(last ?? (await anchorOf(client)), e);
  await client.query(`INSERT INTO audit_log (${AUDIT_COLUMNS}) VALUES (${markers(12)})`, auditValues(entry));
  return entry;
}
