import type { AuditEntry } from "./audit-store.ts";
import type { ApiKeyRecord, Role, StoredApiKey } from "./key-store.ts";
import type { MqttMessage, NewMqttMessage } from "./mqtt-outbox.ts";
import type { Webhook, WebhookDelivery } from "./webhook-store.ts";

/**
 * The API's records as rows: the same columns in the SQLite and the PostgreSQL schema, so both stores read them
 * with these functions. JSON fields (an audit summary, a webhook's watchlists) are kept as the text written, not
 * parsed by the database: the audit hash covers the summary exactly as it was serialised, and PostgreSQL's jsonb
 * would reorder its keys.
 */
export interface KeyRow {
  id: string;
  name: string;
  role: string;
  hash: string;
  created_ts: number;
  revoked_ts: number | null;
  last_used_ts: number | null;
  rate_limit: number | null;
}

export interface AuditRow {
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

export interface WebhookRow {
  id: string;
  url: string;
  secret: string;
  watchlists: string | null;
  description: string;
  created_ts: number;
}

export interface DeliveryRow {
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

export const toKey = (r: KeyRow): StoredApiKey => ({
  id: r.id,
  name: r.name,
  role: r.role as Role,
  hash: r.hash,
  createdTs: r.created_ts,
  revokedTs: r.revoked_ts,
  lastUsedTs: r.last_used_ts,
  rateLimitPerMinute: r.rate_limit,
});

export const publicKey = ({ hash: _hash, ...record }: StoredApiKey): ApiKeyRecord => record;

export const toAudit = (r: AuditRow): AuditEntry => ({
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

/** The audit columns in insert order, and an entry's values for them. */
export const AUDIT_COLUMNS =
  "seq, ts, key_id, actor, role, action, target, outcome, status, summary, ip, hash" as const;
export const auditValues = (e: AuditEntry) => [
  e.seq,
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
  e.hash,
];

export const toWebhook = (r: WebhookRow): Webhook => ({
  id: r.id,
  url: r.url,
  secret: r.secret,
  watchlists: r.watchlists === null ? null : (JSON.parse(r.watchlists) as string[]),
  description: r.description,
  createdTs: r.created_ts,
});

export const WEBHOOK_COLUMNS = "id, url, secret, watchlists, description, created_ts" as const;
export const webhookValues = (w: Webhook) => [
  w.id,
  w.url,
  w.secret,
  w.watchlists === null ? null : JSON.stringify(w.watchlists),
  w.description,
  w.createdTs,
];

export const toDelivery = (r: DeliveryRow): WebhookDelivery => ({
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

export const DELIVERY_COLUMNS =
  "id, webhook_id, alert_id, state, attempts, last_status, last_error, created_ts, updated_ts, next_attempt_ts, payload" as const;
export const deliveryValues = (d: WebhookDelivery) => [
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
];

export const KEY_COLUMNS = "id, name, role, hash, created_ts, revoked_ts, last_used_ts, rate_limit" as const;
export const keyValues = (k: StoredApiKey) => [
  k.id,
  k.name,
  k.role,
  k.hash,
  k.createdTs,
  k.revokedTs,
  k.lastUsedTs,
  k.rateLimitPerMinute,
];

export interface MqttRow {
  id: string;
  payload: string;
  camera_id: string;
  person_name: string;
  state: string;
  attempts: number;
  last_error: string | null;
  created_ts: number;
  updated_ts: number;
  next_attempt_ts: number | null;
}

export const toMqttMessage = (r: MqttRow): MqttMessage => ({
  id: r.id,
  payload: r.payload,
  cameraId: r.camera_id,
  personName: r.person_name,
  state: r.state as MqttMessage["state"],
  attempts: r.attempts,
  lastError: r.last_error,
  createdTs: r.created_ts,
  updatedTs: r.updated_ts,
  nextAttemptTs: r.next_attempt_ts,
});

/** A new message: pending, due at once, no attempt yet. */
export const MQTT_COLUMNS =
  "id, payload, camera_id, person_name, state, attempts, last_error, created_ts, updated_ts, next_attempt_ts" as const;
export const newMqttValues = (m: NewMqttMessage) => [
  m.id,
  m.payload,
  m.cameraId,
  m.personName,
  "pending",
  0,
  null,
  m.createdTs,
  m.createdTs,
  m.createdTs,
];

/**
 * The claim both tables of attempts share (webhook deliveries, MQTT messages): rows pending, due, and held by no
 * live lease, in `order`. Kept here once so the two outboxes and the two databases cannot drift apart.
 */
export const CLAIMABLE = (now: string) =>
  `state = 'pending' AND COALESCE(next_attempt_ts, 0) <= ${now} AND (lease_until IS NULL OR lease_until <= ${now})`;
