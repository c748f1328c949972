import path from "node:path";
import { describe, expect, it, vi } from "vitest";
import { loadConfig } from "../lib/config/index.ts";
import { randomUnit } from "../lib/testing/vectors.ts";
import { RetentionScheduler, retentionOptions } from "../lib/runtime/retention.ts";
import type { IdentityStore } from "../lib/store/identity-store.ts";
import type { Sighting, SightingStore } from "../lib/store/sighting-store.ts";
import type { AlertStore } from "../lib/store/alert-store.ts";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import { useQdrant } from "./qdrant-helpers.ts";
import { sightingOf, tempDir } from "./helpers.ts";

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 10, 28, 12);

const vec = (seed: number, dim = 32) => randomUnit(seed, dim);
const sighting = (id: string, endTs: number, seed: number): Sighting =>
  sightingOf({ id, endTs, vector: vec(seed), crop: Uint8Array.of(1, 2, seed) });

type Store = SightingStore & AlertStore & { unknowns: IdentityStore };

/**
 * Unknown identities have a retention period of their own (`store.unknownRetentionDays`), counted from when
 * each was last seen; the scheduled pass deletes them, and their sightings still kept lose the label only.
 */
async function retentionOfUnknowns(store: Store) {
  // Sightings are kept 30 days, identities 7: one stranger last seen 8 days ago, one 6 days ago.
  const stale = sighting("stale", NOW - 8 * DAY, 1);
  const fresh = sighting("fresh", NOW - 6 * DAY, 2);
  await store.addSightings([stale, fresh]);
  const staleId = (await store.unknowns.assignUnknown(stale, 0.5)).id;
  const freshId = (await store.unknowns.assignUnknown(fresh, 0.5)).id;
  expect(staleId).not.toBe(freshId);

  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
  const passes: { unknowns: number; unknownsBefore?: number }[] = [];
  const retention = new RetentionScheduler(store, {
    retentionDays: 30,
    alertRetentionDays: 90,
    unknownRetentionDays: 7,
    everyS: 3600,
    now: () => NOW,
    onPurged: (r) => passes.push({ unknowns: r.unknowns, unknownsBefore: r.unknownsBefore }),
  }).start(0);
  try {
    // The pass talks to the store (HTTP for Qdrant): wait for it, not just for the timer.
    await vi.advanceTimersByTimeAsync(0);
    await vi.waitFor(() => expect(passes).toHaveLength(1), { timeout: 10_000 });
    expect(passes).toEqual([{ unknowns: 1, unknownsBefore: NOW - 7 * DAY }]);
    expect(await store.unknowns.getUnknown(staleId)).toBeUndefined();
    expect(await store.unknowns.getUnknown(freshId)).toMatchObject({ count: 1 });
    // The sighting is history under its own period: kept, unlabelled.
    const kept = await store.getSighting("stale");
    expect(kept?.id).toBe("stale");
    expect(kept?.unknownId).toBeUndefined();
    expect((await store.getSighting("fresh"))?.unknownId).toBe(freshId);
    // The next period finds nothing more to delete.
    await vi.advanceTimersByTimeAsync(3_600_000);
    await vi.waitFor(() => expect(passes).toHaveLength(2), { timeout: 10_000 });
    expect(passes.map((p) => p.unknowns)).toEqual([1, 0]);
  } finally {
    await retention.stop();
    vi.useRealTimers();
  }
}

const qdrant = useQdrant("retention of unknown identities in the Qdrant store");

describe("retention of unknown identities", () => {
  it("deletes identities not seen within store.unknownRetentionDays (embedded SQLite store)", async () => {
    const store = new SqliteStore(path.join(tempDir("vigil-retention-"), "vigil.db"));
    try {
      await retentionOfUnknowns(store);
    } finally {
      store.close();
    }
  });

  it.skipIf(!!qdrant.skip)(
    "deletes identities not seen within store.unknownRetentionDays (Qdrant store, real server)",
    async () => {
      const { store, proxy } = await qdrant.open();
      await retentionOfUnknowns(store);
      expect(proxy.violations).toEqual([]);
    },
  );

  it("takes the period from the config (default 30 days)", () => {
    expect(retentionOptions(loadConfig({ env: {} })).unknownRetentionDays).toBe(30);
    const set = loadConfig({ env: {}, overrides: { "store.unknownRetentionDays": 7 } });
    expect(retentionOptions(set).unknownRetentionDays).toBe(7);
  });
});
