import type { AuditStore } from "./audit-store.ts";
import type { KeyStore } from "./key-store.ts";
import type { MqttOutboxStore } from "./mqtt-outbox.ts";
import type { WebhookStore } from "./webhook-store.ts";

/**
 * The operator API's records: keys, the audit log, webhooks and their delivery log, the MQTT outbox. In SQLite (the embedded
 * default: SqliteApiStore) or PostgreSQL (several API replicas: PostgresApiStore), chosen by `store.records`.
 */
export interface ApiStore extends KeyStore, AuditStore, WebhookStore, MqttOutboxStore {
  /** Whether the database answers now (readiness): a PostgreSQL server may be away, restarting. */
  healthy(): Promise<boolean>;
  /** Gives back the connection (SQLite) or the pool (PostgreSQL). */
  close(): void | Promise<void>;
}
