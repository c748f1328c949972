import { existsSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { RetentionScheduler } from "../lib/runtime/retention.ts";
import type { NewAlert } from "../lib/store/alert-store.ts";
import { cropKey, FolderCropStore } from "../lib/store/crop-store.ts";
import type { QdrantStore } from "../lib/store/qdrant-store.ts";
import type { Sighting } from "../lib/store/sighting-store.ts";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import { l2normalize } from "../lib/geometry/index.ts";
import { useQdrant } from "./qdrant-helpers.ts";
import { sightingOf, tempDir } from "./helpers.ts";

const DAY = 86_400_000;
/** "Now" for every test: a fixed instant, so ages are exact and nothing waits on the wall clock. */
const NOW = Date.UTC(2026, 10, 28, 12);

const vec = (seed: number) =>
  l2normalize(new Float32Array(16).map((_, k) => Math.sin(seed * 12.9898 + k * 78.233)));

const sighting = (id: string, endTs: number, seed: number): Sighting =>
  sightingOf({ id, endTs, vector: vec(seed), crop: Uint8Array.of(1, 2, seed) });

const alert = (id: string, ts: number): NewAlert => ({
  id,
  watchlistId: "default",
  personId: "ann",
  personName: "Ann",
  cameraId: "door",
  ts,
  score: 0.8,
  threshold: 0.44,
  modelId: "m1",
  faceId: `face-${id}`,
  box: { x: 1, y: 2, width: 30, height: 40 },
  crop: Uint8Array.of(9, 9),
});

/** Sightings kept 30 days, alerts 90: one of each just past its period, one just inside. */
async function seed(store: SqliteStore | QdrantStore) {
  await store.addSightings([
    sighting("old-sighting", NOW - 31 * DAY, 1),
    sighting("fresh-sighting", NOW - 29 * DAY, 2),
  ]);
  await store.addAlerts([alert("old-alert", NOW - 91 * DAY), alert("fresh-alert", NOW - 89 * DAY)]);
}

const options = { retentionDays: 30, alertRetentionDays: 90, everyS: 3600 };

const qdrant = useQdrant("retention in the Qdrant store");

describe("scheduled retention", () => {
  const closers: (() => void)[] = [];
  afterEach(() => {
    vi.useRealTimers();
    for (const c of closers.splice(0)) c();
  });
  it.skipIf(!!qdrant.skip)(
    "a tick deletes expired sightings, alerts and their crop files from the Qdrant store, and keeps fresh ones",
    async () => {
      const dir = path.join(tempDir("vigil-retention-"), "crops");
      const { store, proxy } = await qdrant.open({ crops: new FolderCropStore(dir) });
      await seed(store);
      const onDisk = (kind: "sightings" | "alerts", id: string) =>
        existsSync(path.join(dir, ...cropKey(kind, id).split("/")));
      expect(onDisk("sightings", "old-sighting") && onDisk("alerts", "old-alert")).toBe(true);

      const purged: unknown[] = [];
      const retention = new RetentionScheduler(store, {
        ...options,
        now: () => NOW,
        onPurged: (r) => purged.push(r),
      });
      expect(await retention.tick()).toEqual({
        sightingsBefore: NOW - 30 * DAY,
        alertsBefore: NOW - 90 * DAY,
        // No period of their own given: unknown identities follow the sightings'.
        unknownsBefore: NOW - 30 * DAY,
        sightings: 1,
        alerts: 1,
        unknowns: 0,
        clips: 0,
      });
      expect(purged).toHaveLength(1);

      expect(await store.getSighting("old-sighting")).toBeUndefined();
      expect(await store.crop("old-sighting")).toBeUndefined();
      expect(onDisk("sightings", "old-sighting")).toBe(false);
      expect(await store.getAlert("old-alert")).toBeUndefined();
      expect(onDisk("alerts", "old-alert")).toBe(false);

      expect((await store.getSighting("fresh-sighting"))?.id).toBe("fresh-sighting");
      expect(Array.from((await store.crop("fresh-sighting"))!)).toEqual([1, 2, 2]);
      expect(onDisk("sightings", "fresh-sighting")).toBe(true);
      expect((await store.getAlert("fresh-alert"))?.id).toBe("fresh-alert");
      expect(onDisk("alerts", "fresh-alert")).toBe(true);
      expect(proxy.violations).toEqual([]);
    },
  );

  it("runs by itself every period, each pass with the clock's time then (embedded SQLite store)", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const store = new SqliteStore(path.join(tempDir("vigil-retention-"), "vigil.db"));
    closers.push(() => store.close());
    await seed(store);
    let now = NOW - 10 * DAY;
    const passes: { sightings: number; alerts: number }[] = [];
    const retention = new RetentionScheduler(store, {
      ...options,
      now: () => now,
      onPurged: (r) => passes.push({ sightings: r.sightings, alerts: r.alerts }),
    }).start();

    // Nothing before the first period; then a pass ten days back, when nothing had expired yet.
    await vi.advanceTimersByTimeAsync(3_599_000);
    expect(passes).toEqual([]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(passes).toEqual([{ sightings: 0, alerts: 0 }]);
    expect(await store.count()).toBe(2);

    // The clock reaches NOW: the next period's pass finds the old records expired.
    now = NOW;
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(passes).toEqual([
      { sightings: 0, alerts: 0 },
      { sightings: 1, alerts: 1 },
    ]);
    expect(await store.getSighting("old-sighting")).toBeUndefined();
    expect(await store.crop("old-sighting")).toBeUndefined();
    expect(await store.getAlert("old-alert")).toBeUndefined();
    expect(await store.alertCrop("old-alert")).toBeUndefined();
    expect((await store.getSighting("fresh-sighting"))?.id).toBe("fresh-sighting");
    expect(Array.from((await store.alertCrop("fresh-alert"))!)).toEqual([9, 9]);

    // Stopped: no further pass, however long the process lives.
    await retention.stop();
    now = NOW + 365 * DAY;
    await vi.advanceTimersByTimeAsync(10 * 3_600_000);
    expect(passes).toHaveLength(2);
    expect(await store.count()).toBe(1);
  });

  it("a failed pass is reported and the next period tries again", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const store = new SqliteStore(path.join(tempDir("vigil-retention-"), "vigil.db"));
    closers.push(() => store.close());
    await seed(store);
    let away = true;
    const errors: string[] = [];
    const retention = new RetentionScheduler(
      {
        purgeBefore: (ts) => (away ? Promise.reject(new Error("store away")) : store.purgeBefore(ts)),
        purgeAlertsBefore: (ts) => store.purgeAlertsBefore(ts),
      },
      { ...options, now: () => NOW, onError: (err) => errors.push((err as Error).message) },
    ).start(0);
    await vi.advanceTimersByTimeAsync(0);
    expect(errors).toEqual(["store away"]);
    away = false;
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(errors).toHaveLength(1);
    expect(await store.count()).toBe(1);
    expect(await store.getAlert("old-alert")).toBeUndefined();
    await retention.stop();
  });
});
