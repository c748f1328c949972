import { createHash } from "node:crypto";
import type {
  AuditAnchor,
  AuditEntry,
  AuditQuery,
  AuditTrimRecord,
  AuditVerification,
  NewAuditEntry,
} from "./audit-store.ts";
import { InvalidInputError } from "./errors.ts";
import type { SqlParams } from "./sql-params.ts";

/**
 * The audit log's hash chain, the same for every store: an entry's hash covers the previous entry's hash and the
 * entry itself, so a changed or removed row breaks the chain from there on. The SQLite and the PostgreSQL store
 * differ only in how they serialise appends; what they write, and how it is verified, is this module.
 */

/** The "previous hash" of the first entry of a log never trimmed. */
export const GENESIS = "0".repeat(64);
/** The action of the entry a retention trim writes into the log it shortened. */
export const AUDIT_TRIM = "audit.trim";

/** What an entry's hash covers, in a fixed order, so the chain can be recomputed from the rows alone. */
export function chainHash(previous: string, e: Omit<AuditEntry, "hash">): string {
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

/** The entry that follows `last` (the newest entry, or the anchor of a log trimmed empty; none: the first). */
export function nextEntry(last: { seq: number; hash: string } | undefined, e: NewAuditEntry): AuditEntry {
  const withSeq = { ...e, seq: (last?.seq ?? 0) + 1 };
  return { ...withSeq, hash: chainHash(last?.hash ?? GENESIS, withSeq) };
}

/**
 * The entry a trim appends, naming the anchor it left: an anchor moved by hand no longer matches the newest trim
 * entry, which itself cannot be changed without breaking the chain.
 */
export function trimEntry(by: AuditTrimRecord, removed: number, anchor: AuditAnchor): NewAuditEntry {
  return {
    ts: by.ts,
    actor: by.actor,
    action: AUDIT_TRIM,
    target: null,
    outcome: "ok",
    status: null,
    summary: { ...by.summary, removed, anchorSeq: anchor.seq, anchorHash: anchor.hash },
    ip: null,
  };
}

export function auditCursor(seq: number): string {
  return Buffer.from(`audit:${seq}`).toString("base64url");
}

export function decodeAuditCursor(cursor: string): number {
  const m = /^audit:(\d+)$/.exec(Buffer.from(cursor, "base64url").toString("utf8"));
  if (!m) throw new InvalidInputError(`not an audit log cursor: ${JSON.stringify(cursor)}`);
  return Number(m[1]);
}

/** The WHERE conditions of an audit query (without the page size), their values added to `params`. */
export function auditConditions(query: AuditQuery, params: SqlParams): string[] {
  const where: string[] = [];
  if (query.cursor !== undefined) where.push(`seq < ${params.add(decodeAuditCursor(query.cursor))}`);
  if (query.since !== undefined) where.push(`ts >= ${params.add(query.since)}`);
  if (query.until !== undefined) where.push(`ts <= ${params.add(query.until)}`);
  if (query.action !== undefined) {
    // `search` also finds `search.photo`: actions are dotted families.
    const family = `${query.action.replace(/[\\%_]/g, (c) => `\\${c}`)}.%`;
    where.push(`(action = ${params.add(query.action)} OR action LIKE ${params.add(family)} ESCAPE '\\')`);
  }
  if (query.keyId !== undefined) where.push(`key_id = ${params.add(query.keyId)}`);
  return where;
}

/**
 * Checks the kept log: every entry, in seq order from the anchor, follows from the one before it; and, once the
 * log was trimmed, the newest trim entry names the anchor as it stands. `entries` may be read lazily (a large log
 * in pages); `lastTrim` is asked for only when there is an anchor.
 */
export async function verifyChain(
  anchor: AuditAnchor | undefined,
  entries: Iterable<AuditEntry> | AsyncIterable<AuditEntry>,
  lastTrim: () => Promise<AuditEntry | undefined>,
): Promise<AuditVerification> {
  let previous = anchor?.hash ?? GENESIS;
  let count = 0;
  let expectedSeq = (anchor?.seq ?? 0) + 1;
  for await (const entry of entries) {
    const { hash, ...rest } = entry;
    if (entry.seq !== expectedSeq || chainHash(previous, rest) !== hash)
      return { ok: false, entries: count, brokenAt: entry.seq, anchor: anchor ?? null };
    previous = hash;
    expectedSeq++;
    count++;
  }
  if (anchor) {
    const trim = await lastTrim();
    const said = (trim?.summary ?? {}) as { anchorSeq?: number; anchorHash?: string };
    if (said.anchorSeq !== anchor.seq || said.anchorHash !== anchor.hash)
      return { ok: false, entries: count, brokenAt: trim?.seq ?? anchor.seq + 1, anchor };
  }
  return { ok: true, entries: count, anchor: anchor ?? null };
}
