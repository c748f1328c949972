import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { auditRetention } from "../lib/api/audit-retention.ts";
import type { NewAuditEntry } from "../lib/store/audit-store.ts";
import { SqliteApiStore } from "../lib/store/sqlite-api-store.ts";

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 0, 1);

const by = (ts: number) => ({ ts, actor: { keyId: null, name: "system:test", role: null }, summary: {} });

const entry = (ts: number, action = "search"): NewAuditEntry => ({
  ts,
  actor: { keyId: "k1", name: "desk", role: "operator" },
  action,
  target: null,
  outcome: "ok",
  status: 200,
  summary: { q: ts },
  ip: "127.0.0.1",
});

describe("audit log retention", () => {
  let dir: string;
  let file: string;
  let store: SqliteApiStore;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), "vigil-audit-"));
    file = path.join(dir, "api.db");
    store = new SqliteApiStore(file);
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("trims only the oldest run of entries, leaving an anchor the kept chain verifies from", async () => {
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
    for (const day of [0, 1]) await store.append(entry(T0 + day * DAY));
    expect((await store.trimAuditBefore(T0 + 10 * DAY, by(T0 + 10 * DAY))).removed).toBe(2);
    expect(await store.verifyAudit()).toMatchObject({ ok: true, entries: 1, anchor: { seq: 2 } });
    // Later, the trim entry itself expires: the anchor moves past it and the new trim entry names the new anchor.
    const next = await store.append(entry(T0 + 50 * DAY));
    expect(next.seq).toBe(4);
    expect((await store.trimAuditBefore(T0 + 40 * DAY, by(T0 + 51 * DAY))).removed).toBe(1);
    expect(await store.verifyAudit()).toMatchObject({ ok: true, entries: 2, anchor: { seq: 3 } });
  });

  it("refuses, in the database itself, to delete kept entries or move the anchor back", async () => {
    for (const day of [0, 1, 40]) await store.append(entry(T0 + day * DAY));
    await store.trimAuditBefore(T0 + 30 * DAY, by(T0 + 41 * DAY));
    expect((await store.verifyAudit()).ok).toBe(true);
    const db = new Database(file);
    try {
      expect(() => db.prepare("DELETE FROM audit_log WHERE seq = 3").run()).toThrow(/append-only/);
      expect(() => db.prepare("UPDATE audit_anchor SET seq = 1").run()).toThrow(/only moves forward/);
      expect(() => db.prepare("DELETE FROM audit_anchor").run()).toThrow(/cannot be removed/);
      // Someone with the file moves the anchor over a kept entry, with that entry's true hash, to delete it:
      // the chain from the anchor still holds, but the trim entry names another anchor.
      const row3 = db.prepare("SELECT hash, ts FROM audit_log WHERE seq = 3").get() as {
        hash: string;
        ts: number;
      };
      db.prepare("UPDATE audit_anchor SET seq = 3, hash = ?, ts = ?").run(row3.hash, row3.ts);
      db.prepare("DELETE FROM audit_log WHERE seq = 3").run();
    } finally {
      db.close();
    }
    expect(await store.verifyAudit()).toMatchObject({ ok: false, brokenAt: 4 });
  });

  it("runs on a schedule and records each trim in the log it trimmed", async () => {
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
});
