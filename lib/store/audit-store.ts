import type { Page } from "./paging.ts";

/** Who did something: an API key, or a person at the command line. */
export interface AuditActor {
  /** The key's public id; null for the CLI. */
  keyId: string | null;
  /** The key's name, or `cli:<user>`. */
  name: string;
  role: string | null;
}

export interface NewAuditEntry {
  ts: number;
  actor: AuditActor;
  /** `search`, `timeline`, `person.enrol`, `key.create`, … */
  action: string;
  /** What it was done to: a person id, an alert id, a key id; null for a query. */
  target: string | null;
  /** `denied`: the role lacked the right; `failed`: refused or went wrong (the status says which). */
  outcome: "ok" | "denied" | "failed";
  /** HTTP status; null for the CLI. */
  status: number | null;
  /** The query or change in a few fields: filters, file names, sizes and digests; never image bytes. */
  summary: Record<string, unknown>;
  ip: string | null;
}

export interface AuditEntry extends NewAuditEntry {
  /** Position in the log, from 1 without gaps. */
  seq: number;
  /** sha256 over the previous entry's hash and this entry: a row changed or removed breaks the chain. */
  hash: string;
}

export interface AuditQuery {
  limit: number;
  /** `nextCursor` of the previous page. */
  cursor?: string;
  since?: number;
  until?: number;
  action?: string;
  keyId?: string;
}

/** Where the kept log starts: the last trimmed entry, whose hash the first kept entry chains from. */
export interface AuditAnchor {
  seq: number;
  hash: string;
  ts: number;
}

export interface AuditVerification {
  ok: boolean;
  entries: number;
  /** The first entry whose hash does not follow from the ones before it. */
  brokenAt?: number;
  /** null until retention first trims the log; then the chain is verified from here. */
  anchor: AuditAnchor | null;
}

/** Who trimmed the log and when: the trim is itself an entry (`audit.trim`) naming the anchor it left. */
export interface AuditTrimRecord {
  ts: number;
  actor: AuditActor;
  summary: Record<string, unknown>;
}

export interface AuditTrim {
  removed: number;
  anchor: AuditAnchor | null;
}

/**
 * The append-only audit log: entries are added, read newest first, and checked; never changed. Retention removes
 * the oldest entries only, moving an anchor forward so what is kept still verifies.
 */
export interface AuditStore {
  append(entry: NewAuditEntry): Promise<AuditEntry>;
  listAudit(query: AuditQuery): Promise<Page<AuditEntry>>;
  verifyAudit(): Promise<AuditVerification>;
  /** Removes every entry older than `before` from the start of the log, up to the first newer one. */
  trimAuditBefore(before: number, by: AuditTrimRecord): Promise<AuditTrim>;
}
