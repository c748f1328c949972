import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../lib/config/index.ts";
import { AlertContract, SightingContract, Topics } from "../lib/contracts/index.ts";
import { cosine } from "../lib/geometry/index.ts";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import { embeddingMessage, partitionBatch } from "../lib/testing/embedding-message.ts";
import { randomUnit } from "../lib/testing/vectors.ts";
import { Follows, nextCameras } from "../lib/watchlist/follows.ts";
import { MatchStage } from "../services/match/stage.ts";
import { followCommand } from "../cli/commands/follow.ts";
import { apiHarness, sighting, vec } from "./api-harness.ts";
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
  async function annOnTheWatchlist(file = path.join(tempDir("vigil-follow-"), "vigil.db")) {
    const store = new SqliteStore(file);
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

  it("vigil follow <unknown-…> prints a stranger's every pass as the match stage stores it, cool-down or not, and no alert", async () => {
    const dir = tempDir("vigil-follow-unknown-");
    const config = testConfig({
      "store.path": path.join(dir, "vigil.db"),
      cameras: [
        { id: "door", url: "rtsp://x/door", neighbours: [{ id: "lobby", transitS: 20 }] },
        { id: "lobby", url: "rtsp://x/lobby" },
      ],
    });
    const store = await annOnTheWatchlist(path.join(dir, "vigil.db"));
    const bea = randomUnit(11, 16);
    // Bea matches nobody on the watchlist: she can only be an unknown identity.
    expect(cosine(bea, ann)).toBeLessThan(0.5);
    const stage = new MatchStage(
      store,
      store,
      testMatchOptions(0.5, {
        follows: new Follows(store, Date.now, 0),
        unknowns: { store: store.unknowns, thresholdFor: () => 0.5 },
      }),
    );
    let seq = 0;
    const pass = async (start: number) => {
      const emits = [];
      for (let i = 0; i < 3; i++)
        emits.push(
          ...(await stage.handle([
            embeddingMessage({
              cameraId: "door",
              seq: ++seq,
              ts: start + i * 200,
              vector: bea,
              modelId: MODEL,
              quality,
            }),
          ])),
        );
      return emits;
    };
    const sightingsIn = (emits: { topic: string; value: Uint8Array }[]) =>
      emits.filter((e) => e.topic === Topics.sightings).map((e) => SightingContract.decode(e.value));
    const now = Date.now();
    // Seen once, before anyone follows her: what makes her an identity to follow.
    const [first] = sightingsIn([...(await pass(now - 120_000)), ...(await stage.flush())]);
    const id = first!.unknownId!;
    expect(id).toMatch(/^unknown-[0-9a-f]{12}$/);
    const lines: string[] = [];
    const abort = new AbortController();
    const running = followCommand(config, id, { for: "10m", pollMs: 100 }, abort.signal, (l) =>
      lines.push(l),
    );
    try {
      const follows = new Follows(store, Date.now, 0);
      await until(() => follows.isFollowed(id));
      // Two passes 10 s apart, well within the 30 s cool-down that would hold a watchlist match's second alert.
      const emits = [...(await pass(now)), ...(await pass(now + 10_000)), ...(await stage.flush())];
      expect(emits.filter((e) => e.topic === Topics.alerts)).toEqual([]);
      const passes = sightingsIn(emits);
      expect(passes.map((s) => [s.unknownId, s.match])).toEqual([
        [id, null],
        [id, null],
      ]);
      const seen = () => lines.filter((l) => /seen {3}door .*→ next: lobby \(~20 s\)/.test(l));
      await until(() => seen().length === 2);
      expect(seen().map((l) => l.slice(0, 24))).toEqual(passes.map((s) => new Date(s.startTs).toISOString()));
      // The pass before the follow started is history, not news; and a stranger is never said to alert.
      expect(lines[0]).toMatch(new RegExp(`^following ${id} until .*: every sighting shows`));
      expect(lines.filter((l) => /ALERT|seen/.test(l))).toEqual(seen());
      abort.abort();
      await running;
      expect(lines.at(-1)).toBe(`stopped following ${id}`);
      expect(await follows.isFollowed(id)).toBe(false);
      await expect(
        followCommand(config, "unknown-000000000000", { for: "1m", pollMs: 100 }, undefined, () => {}),
      ).rejects.toThrow(/no unknown identity unknown-000000000000/);
    } finally {
      abort.abort();
      store.close();
    }
  });

  it("/v1/follows follows an unknown identity: its latest sightings newest first, where it may appear next", async () => {
    const h = await apiHarness({
      cameras: [
        { id: "door", url: "rtsp://x/door", neighbours: [{ id: "lobby", transitS: 20 }] },
        { id: "lobby", url: "rtsp://x/lobby" },
      ],
    });
    const call = (method: "GET" | "PUT" | "DELETE", url: string, payload?: object) =>
      h.app.inject({ method, url, headers: h.auth("operator"), ...(payload ? { payload } : {}) });
    try {
      const now = Date.now();
      const see = async (id: string, cameraId: string, ts: number, vector = vec(1, 0.05, 0.05)) => {
        const s = sighting(id, cameraId, ts, vector);
        await h.store.addSightings([s]);
        return (await h.store.unknowns.assignUnknown(s, 0.9)).id;
      };
      const id = await see("u-1", "door", now - 60_000);
      expect(await see("u-2", "lobby", now - 20_000)).toBe(id);
      // Another stranger's sighting, and a watchlist match's, later still: neither is the identity's.
      expect(await see("u-other", "door", now - 10_000, vec(0.05, 1, 0.05))).not.toBe(id);
      await h.store.addSightings([
        sighting("x", "door", now - 5_000, vec(1, 0.05, 0.05), { personId: "ann", name: "Ann", score: 0.9 }),
      ]);

      const put = await call("PUT", `/v1/follows/${id}`, { forS: 600 });
      expect(put.statusCode).toBe(200);
      expect(put.json()).toMatchObject({ personId: id, by: "operator-key" });
      expect(put.json().until - put.json().since).toBe(600_000);
      expect(
        (await call("GET", "/v1/follows")).json().items.map((f: { personId: string }) => f.personId),
      ).toEqual([id]);
      const view = await call("GET", `/v1/follows/${id}`);
      expect(view.statusCode).toBe(200);
      expect(view.json().follow).toMatchObject({ personId: id });
      expect(
        view.json().sightings.map((s: { id: string; unknownId: string }) => [s.id, s.unknownId]),
      ).toEqual([
        ["u-2", id],
        ["u-1", id],
      ]);
      // Seen last in the lobby: the door, 20 s back, is where the camera map says to look next.
      expect(view.json().next).toEqual([{ cameraId: "door", transitS: 20 }]);

      expect((await call("DELETE", `/v1/follows/${id}`)).statusCode).toBe(204);
      expect((await call("GET", `/v1/follows/${id}`)).json().follow).toBeNull();
      expect((await call("GET", "/v1/follows")).json().items).toEqual([]);
      // A bare PUT (no body) follows for the default hour.
      const bare = await call("PUT", `/v1/follows/${id}`);
      expect(bare.statusCode).toBe(200);
      expect(bare.json().until - bare.json().since).toBe(3_600_000);
      expect((await call("DELETE", `/v1/follows/${id}`)).statusCode).toBe(204);
      const ghost = await call("PUT", "/v1/follows/unknown-000000000000", {});
      expect(ghost.statusCode).toBe(404);
      expect(ghost.json().message).toMatch(/no person or unknown identity unknown-000000000000/);
    } finally {
      await h.close();
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
