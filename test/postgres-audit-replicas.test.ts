import { afterEach, describe, expect, it, vi } from "vitest";
import { auditCommand } from "../cli/commands/keys.ts";
import type { AuditEntry, NewAuditEntry } from "../lib/store/audit-store.ts";
import { PostgresApiStore } from "../lib/store/postgres/api-store.ts";
import { testConfig } from "./helpers.ts";
import { usePostgres } from "./postgres-helpers.ts";

const postgres = usePostgres("the audit chain with concurrent writers");

const T0 = Date.UTC(2026, 0, 1);
const entry = (replica: number, i: number, ts: number): NewAuditEntry => ({
  ts,
  actor: { keyId: `k${replica}`, name: `replica ${replica}`, role: "operator" },
  action: "search",
  target: null,
  outcome: "ok",
  status: 200,
  summary: { replica, i },
  ip: "10.0.0.1",
});

describe.skipIf(postgres.skip !== undefined)(
  "one audit chain from three API replicas writing at once",
  () => {
    const stores: PostgresApiStore[] = [];
    afterEach(async () => {
      for (const s of stores.splice(0)) await s.close();
      vi.restoreAllMocks();
    });

    it("gives every entry its own place in one unbroken chain, and vigil audit --verify accepts it", async () => {
      const url = await postgres.database();
      // Three replicas, each with its pool (as three processes would have), starting at once: one migrates.
      stores.push(...(await Promise.all([1, 2, 3].map(() => PostgresApiStore.open(url, { max: 4 })))));
      const perReplica = 40;
      // Every replica fires all its appends at once: more writers than connections, all racing for the head.
      const written: AuditEntry[][] = await Promise.all(
        stores.map((store, r) =>
          Promise.all(Array.from({ length: perReplica }, (_, i) => store.append(entry(r, i, T0 + i)))),
        ),
      );
      const seqs = written.flat().map((e) => e.seq);
      expect(new Set(seqs).size).toBe(3 * perReplica);
      expect(Math.min(...seqs)).toBe(1);
      expect(Math.max(...seqs)).toBe(3 * perReplica);
      expect(await stores[0]!.verifyAudit()).toEqual({ ok: true, entries: 3 * perReplica, anchor: null });

      // The command line verifies the same database, found through the config as an operator's would be.
      const config = testConfig({ "store.records.kind": "postgres", "store.records.url": url });
      const printed = vi.spyOn(console, "log").mockImplementation(() => {});
      expect(await auditCommand(config, { verify: true, json: true, limit: 1 })).toBe(true);
      expect(JSON.parse(String(printed.mock.calls.at(-1)![0]))).toMatchObject({
        ok: true,
        entries: 3 * perReplica,
      });
    });

    it("keeps the chain whole when retention trims while the replicas append", async () => {
      const url = await postgres.database();
      stores.push(...(await Promise.all([1, 2, 3].map(() => PostgresApiStore.open(url, { max: 4 })))));
      // Old entries first, so a trim has something to remove, then the race: two replicas append, one trims.
      for (let i = 0; i < 10; i++) await stores[0]!.append(entry(0, i, T0));
      const cutoff = T0 + 1;
      const by = { ts: T0 + 100, actor: { keyId: null, name: "system:retention", role: null }, summary: {} };
      const [a, b, trims] = await Promise.all([
        Promise.all(Array.from({ length: 30 }, (_, i) => stores[1]!.append(entry(1, i, T0 + 10)))),
        Promise.all(Array.from({ length: 30 }, (_, i) => stores[2]!.append(entry(2, i, T0 + 10)))),
        Promise.all([stores[0]!.trimAuditBefore(cutoff, by), stores[0]!.trimAuditBefore(cutoff, by)]),
      ]);
      expect(a.length + b.length).toBe(60);
      // The first trim removes the ten old entries; the second finds nothing older at the start and writes nothing.
      expect(trims.map((t) => t.removed).sort()).toEqual([0, 10]);
      const v = await stores[1]!.verifyAudit();
      expect(v).toMatchObject({ ok: true, entries: 61, anchor: { seq: 10 } });
    });
  },
);
