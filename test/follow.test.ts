import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../lib/config/index.ts";
import { AlertContract, Topics } from "../lib/contracts/index.ts";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import { embeddingMessage, partitionBatch } from "../lib/testing/embedding-message.ts";
import { randomUnit } from "../lib/testing/vectors.ts";
import { Follows, nextCameras } from "../lib/watchlist/follows.ts";
import { MatchStage } from "../services/match/stage.ts";
import { followCommand } from "../cli/commands/follow.ts";
import { tempDir, testConfig, testMatchOptions } from "./helpers.ts";

const MODEL = "m1";
const quality = { faceSize: 90, interOcular: 40, sharpness: 120, yawDeg: 0, pitchDeg: 0, detScore: 0.95 };
const ann = randomUnit(7, 16);
const T = 1_800_000_000_000;

/** Ann passes the door twice, 10 s apart (two tracks: the tracker times out after 3 s), within the cool-down. */
async function alertsOfTwoPasses(store: SqliteStore, follows?: Follows) {
  const stage = new MatchStage(store, store, testMatchOptions(0.5, follows ? { follows } : {}));
  const alerts: string[] = [];
  let seq = 0;
  for (const start of [T, T + 10_000])
    for (let i = 0; i < 3; i++) {
      const emits = await stage.handle([
        embeddingMessage({
          cameraId: "door",
          seq: ++seq,
          ts: start + i * 200,
          vector: ann,
          modelId: MODEL,
          quality,
        }),
      ]);
      for (const e of emits)
        if (e.topic === Topics.alerts) alerts.push(AlertContract.decode(e.value).alertId);
    }
  return alerts;
}

describe("following a person live", () => {
  async function annOnTheWatchlist() {
    const store = new SqliteStore(path.join(tempDir("vigil-follow-"), "vigil.db"));
    await store.upsertPerson({ id: "ann", name: "Ann", watchlistId: "default" });
    await store.addFace({
      faceId: "ann:1.jpg",
      personId: "ann",
      modelId: MODEL,
      vector: ann,
      source: "1.jpg",
    });
    return store;
  }

  it("a followed person's every pass alerts, cool-down or not, one alert a pass; unfollowed, the cool-down holds", async () => {
    const store = await annOnTheWatchlist();
    try {
      expect(await alertsOfTwoPasses(store)).toHaveLength(1);
      let now = T;
      const follows = new Follows(store, () => now, 0);
      await follows.follow("ann", 60_000, "sam");
      expect(await follows.isFollowed("ann")).toBe(true);
      const store2 = await annOnTheWatchlist();
      await new Follows(store2).follow("ann", 3_600_000, "sam");
      try {
        expect(await alertsOfTwoPasses(store2, new Follows(store2))).toHaveLength(2);
      } finally {
        store2.close();
      }
      // A follow ends by itself, and can be ended.
      now = T + 61_000;
      expect(await follows.isFollowed("ann")).toBe(false);
      expect(await follows.list()).toEqual([]);
      now = T;
      await follows.follow("ann", 60_000, "sam");
      expect(await follows.unfollow("ann")).toBe(true);
      expect(await follows.isFollowed("ann")).toBe(false);
    } finally {
      store.close();
    }
  });

  it("a replica that takes a followed person's camera over mid-pass does not alert on that pass again", async () => {
    const store = await annOnTheWatchlist();
    try {
      await new Follows(store).follow("ann", 3_600_000, "sam");
      const options = testMatchOptions(0.5, {
        follows: new Follows(store),
        checkpoints: { state: store, namespace: "follow-test" },
      });
      const look = (seq: number, ts: number) =>
        embeddingMessage({ cameraId: "door", seq, ts, vector: ann, modelId: MODEL, quality });
      const alertsOf = (emits: { topic: string }[]) => emits.filter((e) => e.topic === Topics.alerts).length;
      const partition = [{ topic: Topics.embeddings, partition: 0 }];
      // Two passes within the cool-down; the partition moves to another replica during the second.
      const a = new MatchStage(store, store, options);
      await a.assigned(partition);
      let alerts = 0;
      for (const [i, ts] of [T, T + 200, T + 400, T + 10_000].entries()) {
        const b = partitionBatch([look(i + 1, ts)], i);
        alerts += alertsOf(await a.handle(b.messages, b.info));
        await a.checkpoint();
      }
      expect(alerts).toBe(2);
      await a.revoked(partition);
      const b = new MatchStage(store, store, options);
      await b.assigned(partition);
      for (const [i, ts] of [T + 10_200, T + 10_400].entries()) {
        const next = partitionBatch([look(i + 5, ts)], i + 4);
        alerts += alertsOf(await b.handle(next.messages, next.info));
      }
      expect(alerts).toBe(2);
    } finally {
      store.close();
    }
  });

  it("says where someone may appear next from the camera map, nearest first, either way round", () => {
    const config = loadConfig({
      env: {},
      overrides: {
        cameras: [
          { id: "door", url: "rtsp://x/door", neighbours: [{ id: "lobby", transitS: 20 }, { id: "yard" }] },
          { id: "lobby", url: "rtsp://x/lobby", neighbours: [{ id: "lift", transitS: 40 }] },
          { id: "yard", url: "rtsp://x/yard" },
          { id: "lift", url: "rtsp://x/lift", neighbours: [{ id: "lobby", transitS: 40 }] },
        ],
      },
    });
    expect(nextCameras(config, "door")).toEqual([
      { cameraId: "lobby", transitS: 20 },
      { cameraId: "yard", transitS: null },
    ]);
    expect(nextCameras(config, "lobby")).toEqual([
      { cameraId: "door", transitS: 20 },
      { cameraId: "lift", transitS: 40 },
    ]);
    expect(() =>
      loadConfig({
        env: {},
        overrides: { cameras: [{ id: "door", url: "rtsp://x/door", neighbours: [{ id: "nowhere" }] }] },
      }),
    ).toThrow(/nowhere/);
  });

  it("vigil follow prints the person's alerts and sightings as they arrive, with where they may appear next", async () => {
    const dir = tempDir("vigil-follow-cli-");
    const config = testConfig({
      "store.path": path.join(dir, "vigil.db"),
      cameras: [
        { id: "door", url: "rtsp://x/door", neighbours: [{ id: "lobby", transitS: 20 }] },
        { id: "lobby", url: "rtsp://x/lobby" },
      ],
    });
    const store = new SqliteStore(path.join(dir, "vigil.db"), { refreshMs: 0 });
    await store.upsertPerson({ id: "ann", name: "Ann", watchlistId: "default" });
    const lines: string[] = [];
    const abort = new AbortController();
    const running = followCommand(config, "ann", { for: "10m", pollMs: 100 }, abort.signal, (l) =>
      lines.push(l),
    );
    try {
      const follows = new Follows(store, Date.now, 0);
      await until(() => follows.isFollowed("ann"));
      const now = Date.now();
      await store.addAlerts([
        {
          id: "a-door",
          watchlistId: "default",
          personId: "ann",
          personName: "Ann",
          cameraId: "door",
          ts: now,
          score: 0.8,
          threshold: 0.5,
          modelId: MODEL,
          faceId: "door:1:0",
          box: { x: 1, y: 2, width: 30, height: 30 },
          crop: Uint8Array.of(0xff, 0xd8),
        },
      ]);
      await until(async () => lines.some((l) => /ALERT {2}door .*→ next: lobby \(~20 s\)/.test(l)));
      await store.addSightings([
        {
          id: "s-lobby",
          trackId: "t",
          cameraId: "lobby",
          startTs: now + 20_000,
          endTs: now + 23_000,
          faces: 5,
          modelId: MODEL,
          quality,
          match: { personId: "ann", name: "Ann", score: 0.8 },
          vector: ann,
          crop: Uint8Array.of(0xff, 0xd8),
        },
      ]);
      // The lobby's neighbours are only those that list it: the door, 20 s back.
      await until(async () => lines.some((l) => /seen {3}lobby .*→ next: door \(~20 s\)/.test(l)));
      abort.abort();
      await running;
      expect(lines.at(-1)).toBe("stopped following Ann");
      expect(await follows.isFollowed("ann")).toBe(false);
      await expect(
        followCommand(config, "ghost", { for: "1m", pollMs: 100 }, undefined, () => {}),
      ).rejects.toThrow(/no person on the watchlist ghost/);
    } finally {
      abort.abort();
      store.close();
    }
  });
});

async function until(check: () => Promise<boolean> | boolean, timeoutMs = 10_000) {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 50));
  }
}
