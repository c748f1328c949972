import type { Migration } from "./migrations.ts";

/** The name the record store's schema versions are kept under in `vigil_schema_migrations`. */
export const RECORDS_SCHEMA = "records";

/**
 * The record store's schema, step by step. A shipped step is never edited: a change is a new step at the end.
 * Columns match the SQLite store's (lib/store/sqlite-api-store.ts) so both read rows the same way (api-rows.ts);
 * times are epoch milliseconds in BIGINT, as everywhere in Vigil.
 */
export const RECORD_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "API keys, the audit log with its anchor, webhooks and their deliveries",
    sql: `
CREATE TABLE api_keys (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, hash TEXT NOT NULL, created_ts BIGINT NOT NULL,
  revoked_ts BIGINT, last_used_ts BIGINT, rate_limit INTEGER);

-- summary is the JSON text as hashed (not jsonb, which would reorder its keys and break the chain on verify).
CREATE TABLE audit_log (
  seq BIGINT PRIMARY KEY, ts BIGINT NOT NULL, key_id TEXT, actor TEXT NOT NULL, role TEXT,
  action TEXT NOT NULL, target TEXT, outcome TEXT NOT NULL, status INTEGER, summary TEXT NOT NULL, ip TEXT,
  hash TEXT NOT NULL);
CREATE INDEX audit_log_ts ON audit_log (ts);
CREATE INDEX audit_log_key ON audit_log (key_id, seq);

-- Retention trims the oldest entries, and only those: the anchor (the last trimmed entry's seq and hash) moves
-- forward first, and a row above it can never be deleted, so the chain still verifies from the anchor.
CREATE TABLE audit_anchor (
  id INTEGER PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL, hash TEXT NOT NULL, ts BIGINT NOT NULL);

CREATE FUNCTION vigil_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '%', TG_ARGV[0]; END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION vigil_refuse('the audit log is append-only');
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION vigil_refuse('the audit log is append-only');
CREATE FUNCTION vigil_audit_trim_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.seq > COALESCE((SELECT seq FROM audit_anchor WHERE id = 1), 0) THEN
    RAISE EXCEPTION 'the audit log is append-only; only entries behind the anchor are trimmed';
  END IF;
  RETURN OLD;
END $$;
CREATE TRIGGER audit_log_trim_only BEFORE DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION vigil_audit_trim_only();
CREATE TRIGGER audit_anchor_forward BEFORE UPDATE ON audit_anchor
  FOR EACH ROW WHEN (NEW.seq < OLD.seq) EXECUTE FUNCTION vigil_refuse('the audit anchor only moves forward');
CREATE TRIGGER audit_anchor_no_delete BEFORE DELETE ON audit_anchor
  FOR EACH ROW EXECUTE FUNCTION vigil_refuse('the audit anchor cannot be removed');
CREATE TRIGGER audit_anchor_no_truncate BEFORE TRUNCATE ON audit_anchor
  FOR EACH STATEMENT EXECUTE FUNCTION vigil_refuse('the audit anchor cannot be removed');

CREATE TABLE webhooks (
  id TEXT PRIMARY KEY, url TEXT NOT NULL, secret TEXT NOT NULL, watchlists TEXT, description TEXT NOT NULL,
  created_ts BIGINT NOT NULL);
CREATE TABLE webhook_deliveries (
  id TEXT PRIMARY KEY, webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
  alert_id TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL, last_status INTEGER, last_error TEXT,
  created_ts BIGINT NOT NULL, updated_ts BIGINT NOT NULL, next_attempt_ts BIGINT, payload TEXT NOT NULL);
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (webhook_id, created_ts, id);
CREATE INDEX webhook_deliveries_state ON webhook_deliveries (state, next_attempt_ts);
`,
  },
  {
    version: 2,
    name: "Webhook deliveries claimed by one replica at a time, under a lease",
    sql: `
-- claimed_by: the replica attempting the delivery now; lease_until: when another may take it over if that one
-- stops renewing (it died). Both NULL between attempts.
ALTER TABLE webhook_deliveries ADD COLUMN claimed_by TEXT, ADD COLUMN lease_until BIGINT;
`,
  },
  {
    version: 3,
    name: "The MQTT outbox: each alert published by one replica, another taking over if it dies",
    sql: `
CREATE TABLE mqtt_outbox (
  id TEXT PRIMARY KEY, payload TEXT NOT NULL, camera_id TEXT NOT NULL, person_name TEXT NOT NULL,
  state TEXT NOT NULL, attempts INTEGER NOT NULL, last_error TEXT, created_ts BIGINT NOT NULL,
  updated_ts BIGINT NOT NULL, next_attempt_ts BIGINT, claimed_by TEXT, lease_until BIGINT);
CREATE INDEX mqtt_outbox_due ON mqtt_outbox (state, next_attempt_ts);
CREATE INDEX mqtt_outbox_sent ON mqtt_outbox (state, updated_ts);
`,
  },
  {
    version: 4,
    name: "Alerts and their acknowledgements (their crops stay in the crop store, their vectors here)",
    sql: `
CREATE TABLE alerts (
  id TEXT PRIMARY KEY, watchlist_id TEXT NOT NULL, person_id TEXT NOT NULL, person_name TEXT NOT NULL,
  camera_id TEXT NOT NULL, ts BIGINT NOT NULL, score DOUBLE PRECISION NOT NULL, threshold DOUBLE PRECISION NOT NULL,
  model_id TEXT NOT NULL, face_id TEXT NOT NULL, box TEXT NOT NULL, vector BYTEA, matched_face_id TEXT,
  ack_by TEXT, ack_ts BIGINT, ack_note TEXT);
CREATE INDEX alerts_time ON alerts (ts, id);
CREATE INDEX alerts_person_camera ON alerts (person_id, camera_id, ts);
`,
  },
  {
    version: 5,
    name: "The match stage's checkpoints (per-partition tracker state)",
    sql: `
CREATE TABLE state (key TEXT PRIMARY KEY, value BYTEA NOT NULL, updated_ts BIGINT NOT NULL);
`,
  },
  {
    version: 6,
    name: "The watchlist's people and per-watchlist thresholds (their faces stay in the vector store)",
    sql: `
CREATE TABLE people (id TEXT PRIMARY KEY, name TEXT NOT NULL, watchlist_id TEXT NOT NULL);
CREATE INDEX people_watchlist ON people (watchlist_id);
CREATE TABLE watchlist_thresholds (id TEXT PRIMARY KEY, threshold DOUBLE PRECISION NOT NULL);
`,
  },
  {
    version: 7,
    name: "Enrolled photos' and exclusions' records (their vectors stay in the vector store, their crops in the crop store)",
    sql: `
-- A person's removal takes its photos and exclusions with it in the same statement.
CREATE TABLE photos (
  face_id TEXT PRIMARY KEY, person_id TEXT NOT NULL REFERENCES people (id) ON DELETE CASCADE,
  model_id TEXT NOT NULL, source TEXT NOT NULL, has_crop BOOLEAN NOT NULL);
CREATE INDEX photos_person ON photos (person_id);
CREATE TABLE exclusions (
  id TEXT PRIMARY KEY, person_id TEXT NOT NULL REFERENCES people (id) ON DELETE CASCADE,
  model_id TEXT NOT NULL, note TEXT NOT NULL);
CREATE INDEX exclusions_person ON exclusions (person_id);
`,
  },
  {
    version: 8,
    name: "Unknown identities' records (their centroids stay in the vector store as an index, their sightings' labels beside the sightings)",
    sql: `
-- recent: sightings it counted lately (a replay after a crash finds its own); applied: merges and splits done to it;
-- best: JSON text, as in the embedded store; version: grows with every write of the row, and rides on its centroid so the index keeps the newest.
CREATE TABLE unknowns (
  id TEXT PRIMARY KEY, model_id TEXT NOT NULL, name TEXT, first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL,
  count INTEGER NOT NULL, cameras TEXT[] NOT NULL, best TEXT NOT NULL, sum BYTEA NOT NULL, promoted_to TEXT,
  recent TEXT[] NOT NULL, applied TEXT[] NOT NULL, merging_into TEXT, version BIGINT NOT NULL);
CREATE INDEX unknowns_last_seen ON unknowns (last_seen, id);
CREATE INDEX unknowns_cameras ON unknowns USING GIN (cameras);
CREATE INDEX unknowns_recent ON unknowns USING GIN (recent);
`,
  },
];
