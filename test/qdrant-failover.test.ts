import path from "node:path";
import { describe, expect, it } from "vitest";
import { cliActor, KeyService } from "../lib/api/keys.ts";
import { AlertContract, SightingContract, Topics, type EmbeddingMessage } from "../lib/contracts/index.ts";
import type { Emit } from "../lib/runtime/stage.ts";
import { qdrantForget, qdrantRepair, qdrantStatus } from "../cli/commands/qdrant.ts";
import { loadConfig } from "../lib/config/index.ts";
import { collectionCopies, collectionsOf, peerId } from "../lib/store/qdrant-cluster.ts";
import { QdrantStore } from "../lib/store/qdrant-store.ts";
import { SqliteApiStore } from "../lib/store/sqlite-api-store.ts";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import { embeddingMessage } from "../lib/testing/embedding-message.ts";
import { nearUnit, randomUnit } from "../lib/testing/vectors.ts";
import { photoName, type PhotoEmbedder, type PhotoInput } from "../lib/watchlist/photo.ts";
import { WatchlistService } from "../lib/watchlist/service.ts";
import { MatchStage } from "../services/match/stage.ts";
import { apiOver, form, photo, RED } from "./api-harness.ts";
import { caughtUp, folderCrops, useQdrant } from "./qdrant-helpers.ts";
import { tempDir, testConfig, testMatchOptions } from "./helpers.ts";

/**
 * A node lost, nothing lost (issue #24 item 4): a three-node Qdrant cluster on 127.0.0.1, collections of three
 * shards with two copies each; the match stage and the operator API (both in this process, over one store that
 * knows all three nodes) write sightings, alerts, watchlist faces and unknown identities and answer reads the whole
 * time. The node the store is using is `kill -9`'d mid-stream and started again later with its storage; then the
 * node it failed over to is killed, its storage deleted, and it comes back empty as a new peer. Everything written
 * must be there by id afterwards, the same as an undisturbed run of the same stream over the embedded store, every
 * call must have been answered, and the restarted nodes must hold active copies again.
 */

const MODEL = "m1";
const CAMERAS = ["door", "lobby", "yard", "dock"];
/** Identities 0–3 are on the watchlist (enrolled as the stream goes), 4–7 are strangers. */
const FACES = Array.from({ length: 8 }, (_, i) => randomUnit(i + 1));
const ROUNDS = 330;
/** A camera shows one identity for this many rounds (250 ms apart), then the next. */
const WINDOW = 15;
const T0 = 1_700_000_000_000;
const quality = { faceSize: 90, interOcular: 40, sharpness: 120, yawDeg: 0, pitchDeg: 0, detScore: 0.95 };

/** Round r: one face per camera, each camera seeing the identities in turn. */
const stream: EmbeddingMessage[][] = Array.from({ length: ROUNDS }, (_, r) =>
  CAMERAS.map((cameraId, c) =>
    embeddingMessage({
      cameraId,
      seq: r,
      ts: T0 + r * 250,
      vector: nearUnit(FACES[(c + Math.floor(r / WINDOW)) % FACES.length]!, 1000 + r * 8 + c, 0.15),
      modelId: MODEL,
      quality,
    }),
  ),
);

/** Photos are named for the face they show: `p<identity>-<n>.jpg`, a look of that identity. */
const photos: PhotoEmbedder = {
  embedPhoto: async (p: PhotoInput) => {
    const m = /^p(\d+)-(\d+)/.exec(path.basename(photoName(p)));
    if (!m) return { ok: false, reason: "no face found" };
    return {
      ok: true,
      modelId: MODEL,
      vector: nearUnit(FACES[Number(m[1])]!, 50_000 + Number(m[2]), 0.15),
      face: { width: 4, height: 4, data: new Uint8Array(48).fill(128) },
    };
  },
  embedAlignedCrop: async () => ({ ok: false, reason: "not used here" }),
};

/** Enrolments during the stream, by round: who, with which photos. */
const ENROL: Record<number, { id: string; photos: string[] }> = {
  0: { id: "p0", photos: ["p0-0.jpg", "p0-1.jpg"] },
  1: { id: "p1", photos: ["p1-0.jpg"] },
  70: { id: "p0", photos: ["p0-2.jpg"] },
  90: { id: "p2", photos: ["p2-0.jpg", "p2-1.jpg"] },
  200: { id: "p1", photos: ["p1-1.jpg"] },
  230: { id: "p3", photos: ["p3-0.jpg"] },
};

const stageOptions = (store: QdrantStore | SqliteStore) =>
  testMatchOptions(0.5, {
    alertCooldownMs: 20_000,
    unknowns: { store: store.unknowns, thresholdFor: () => 0.6 },
  });

/** What a run wrote, as the stage announced it. */
class Written {
  sightings = new Set<string>();
  alerts = new Set<string>();
  unknowns = new Map<string, number>();
  add(emits: Emit[]) {
    for (const e of emits) {
      if (e.topic === Topics.sightings) {
        const s = SightingContract.decode(e.value);
        this.sightings.add(s.sightingId);
        if (s.unknownId) this.unknowns.set(s.unknownId, (this.unknowns.get(s.unknownId) ?? 0) + 1);
      } else if (e.topic === Topics.alerts) this.alerts.add(AlertContract.decode(e.value).alertId);
    }
  }
}

/** The same stream and enrolments over the embedded store, undisturbed: what the cluster run must hold. */
async function undisturbed(): Promise<Written> {
  const store = new SqliteStore(path.join(tempDir("vigil-failover-"), "vigil.db"), { refreshMs: 0 });
  const stage = new MatchStage(store, store, stageOptions(store));
  const watchlist = new WatchlistService({ store, photos });
  const out = new Written();
  for (const [r, batch] of stream.entries()) {
    const enrol = ENROL[r];
    if (enrol)
      await watchlist.enrol(
        { id: enrol.id },
        enrol.photos.map((name) => ({ name, bytes: new Uint8Array(1) })),
      );
    out.add(await stage.handle(batch));
  }
  out.add(await stage.flush());
  store.close();
  return out;
}

const qdrant = useQdrant("the node-loss test on a three-node cluster", { nodes: 3 });
describe.skipIf(!!qdrant.skip)("a Qdrant node lost, nothing lost", () => {
  it("kill -9 of the node in use, then of another with its disk: every record there by id, every call answered, the nodes caught up", async () => {
    const expected = await undisturbed();
    const server = qdrant.server()!;
    const [n0, n1, n2] = [server.nodes[0]!, server.nodes[1]!, server.nodes[2]!];
    const layout = { shardNumber: 3, replicationFactor: 2, writeConsistencyFactor: 1 };
    const warnings: string[] = [];
    const prefix = `failover${Date.now().toString(36)}`;
    const store = new QdrantStore(server.urls, prefix, undefined, folderCrops(), {
      layout,
      warn: (m) => warnings.push(m),
    });
    // The API is called as fast as the test can: its per-key rate limit is not what is measured here.
    const config = testConfig({ "api.rateLimit.perMinute": 1_000_000, "api.rateLimit.burst": 100_000 });
    const apiStore = new SqliteApiStore(path.join(tempDir("vigil-failover-api-"), "api.db"));
    const { app, bus, feed } = await apiOver({ config, store, apiStore, photos });
    const key = (await new KeyService(apiStore, apiStore).create({ name: "ops", role: "admin" }, cliActor()))
      .key;
    const auth = { authorization: `Bearer ${key}` };
    const jpeg = await photo(RED);

    type Phase =
      "whole" | "node 0 killed" | "node 0 back" | "node 1 lost with its disk" | "node 1 back empty";
    let phase: Phase = "whole";
    const calls = new Map<
      Phase,
      { api: number; apiFailed: number; batches: number; batchesFailed: number; slowestMs: number }
    >();
    const tally = () => {
      let t = calls.get(phase);
      if (!t) calls.set(phase, (t = { api: 0, apiFailed: 0, batches: 0, batchesFailed: 0, slowestMs: 0 }));
      return t;
    };
    const failures: string[] = [];

    /** An API call, counted: anything but a 2xx is a failed call. */
    const api = async (
      method: "GET" | "POST",
      url: string,
      body?: { payload: Buffer; headers: Record<string, string> },
    ) => {
      const t = tally();
      const started = performance.now();
      const res = await app.inject({
        method,
        url,
        headers: { ...auth, ...body?.headers },
        ...(body ? { payload: body.payload } : {}),
      });
      t.api++;
      t.slowestMs = Math.max(t.slowestMs, performance.now() - started);
      if (res.statusCode >= 300) {
        t.apiFailed++;
        failures.push(`${phase}: ${method} ${url} → ${res.statusCode} ${res.body.slice(0, 200)}`);
      }
      return res;
    };
    const READS = [
      () => api("GET", "/v1/sightings?limit=20"),
      () => api("GET", "/v1/alerts?limit=20"),
      () => api("GET", "/v1/unknowns?limit=20"),
      () => api("GET", "/v1/people"),
    ];
    const search = async (r: number) =>
      api(
        "POST",
        "/v1/sightings/search",
        await form({ limit: "10" }, [{ name: `p${r % 8}-9${r}.jpg`, bytes: jpeg }]),
      );

    const stage = new MatchStage(store, store, stageOptions(store));
    const written = new Written();
    /** A batch as the runner hands it: one that fails is counted and handed again (at-least-once). */
    const handle = async (run: () => Promise<Emit[]>) => {
      for (let attempt = 0; attempt < 5; attempt++) {
        const t = tally();
        const started = performance.now();
        t.batches++;
        try {
          written.add(await run());
          t.slowestMs = Math.max(t.slowestMs, performance.now() - started);
          return;
        } catch (err) {
          t.batchesFailed++;
          failures.push(`${phase}: match batch failed: ${(err as Error).message}`);
        }
      }
      throw new Error(`a match batch failed five times: ${failures.at(-1)}`);
    };

    const collections = () => collectionsOf(n2.url, `${prefix}_`);
    const lostPeer = { id: 0 };
    // The config an operator's `vigil qdrant …` runs with, and what it printed.
    const operator = loadConfig({
      env: {},
      overrides: { "store.kind": "qdrant", "store.qdrantUrl": server.urls, "store.qdrantPrefix": prefix },
    });
    const printed: string[] = [];
    const said = (line: string) => void printed.push(line);
    let recovery: Promise<void> | undefined;
    const timeline: Record<string, number> = {};
    const started = performance.now();
    const mark = (what: string) => (timeline[what] = Math.round(performance.now() - started));

    for (const [r, batch] of stream.entries()) {
      if (r === 60) {
        // The node every call goes to (the first URL) dies, as a machine does.
        phase = "node 0 killed";
        mark("node 0 killed");
        await n0.kill();
      } else if (r === 140) {
        await n0.start(60_000);
        mark("node 0 restarted");
        phase = "node 0 back";
        // It recovers its copies itself while the stream goes on.
        const names = await collections();
        recovery = caughtUp(n0.url, names, 120_000).then(() => void mark("node 0 caught up"));
      } else if (r === 190) {
        await recovery;
        // The node the store failed over to dies and its disk is lost.
        lostPeer.id = await peerId(n1.url);
        phase = "node 1 lost with its disk";
        mark("node 1 killed");
        await n1.kill();
        n1.wipe();
      } else if (r === 270) {
        // The operator's part (`vigil qdrant forget`, then `repair`): forget the lost peer, start the node empty
        // (a new peer on the same address), copy the shards that lost a copy onto it.
        await qdrantForget(operator, lostPeer.id, said);
        await n1.start(60_000);
        mark("node 1 restarted empty");
        phase = "node 1 back empty";
        const names = await collections();
        expect(await qdrantRepair(operator, said)).toBeGreaterThan(0);
        recovery = caughtUp(n1.url, names, 120_000).then(() => void mark("node 1 caught up"));
      }
      const enrol = ENROL[r];
      if (enrol)
        await api(
          "POST",
          "/v1/people",
          await form(
            { id: enrol.id },
            enrol.photos.map((name) => ({ name, bytes: jpeg })),
          ),
        );
      await handle(() => stage.handle(batch));
      await READS[r % READS.length]!();
      await search(r);
    }
    await handle(() => stage.flush());
    await recovery;
    const names = await collections();
    await caughtUp(n0.url, names, 120_000);

    const report = {
      calls: Object.fromEntries(calls),
      store: store.nodes.stats,
      timelineMs: timeline,
      written: {
        sightings: written.sightings.size,
        alerts: written.alerts.size,
        unknowns: written.unknowns.size,
      },
    };
    console.log(`qdrant failover: ${JSON.stringify(report)}`);

    // Every call answered: no API call failed, no match batch had to be handed again.
    expect(failures).toEqual([]);
    // The store said where it went.
    expect(warnings.some((w) => w.includes(`Qdrant at ${n0.url} failed`))).toBe(true);
    expect(store.nodes.stats.failovers).toBeGreaterThanOrEqual(2);

    // The same records as the undisturbed run, each there by id.
    expect(written.sightings).toEqual(expected.sightings);
    expect(written.alerts).toEqual(expected.alerts);
    expect(written.unknowns).toEqual(expected.unknowns);
    expect(expected.alerts.size).toBeGreaterThan(10);
    // Four strangers, and the two people enrolled late as they were before their enrolment.
    expect(expected.unknowns.size).toBeGreaterThanOrEqual(4);
    for (const id of expected.sightings) expect(await store.getSighting(id), id).toMatchObject({ id });
    for (const id of expected.alerts) expect(await store.getAlert(id), id).toMatchObject({ id });
    for (const [id, count] of expected.unknowns)
      expect(await store.unknowns.getUnknown(id), id).toMatchObject({ id, count });
    const faces = new Map<string, string[]>();
    for (const e of Object.values(ENROL)) faces.set(e.id, [...(faces.get(e.id) ?? []), ...e.photos]);
    for (const [person, files] of faces) {
      const listed = (await store.listFaces(person)).map((f) => f.source).sort();
      expect(listed, person).toEqual([...files].sort());
    }

    // Every node answers for everything: the one restarted with its disk and the one restarted empty alike.
    for (const node of server.nodes) {
      const only = new QdrantStore(node.url, prefix, undefined, folderCrops(), { layout, warn: () => {} });
      expect(await only.count(), node.url).toBe(expected.sightings.size);
      expect(await only.countAlerts(), node.url).toBe(expected.alerts.size);
      only.close();
    }
    // …and each holds active copies of its shards again: node 1 as a new peer, given copies by `repair`.
    expect((await qdrantStatus(operator, said)).filter((s) => s.short)).toEqual([]);
    for (const name of names) {
      const { copies } = await collectionCopies(n1.url, name);
      expect(
        copies.some((c) => c.peer === lostPeer.id),
        name,
      ).toBe(false);
    }
    for (const node of [n0, n1]) {
      const me = await peerId(node.url);
      const held = (await Promise.all(names.map((c) => collectionCopies(node.url, c)))).flatMap((v) =>
        v.copies.filter((c) => c.peer === me),
      );
      expect(held.length, node.url).toBeGreaterThan(0);
      expect(
        held.every((c) => c.state === "Active"),
        node.url,
      ).toBe(true);
    }

    await app.close();
    await feed.stop();
    await bus.close();
    apiStore.close();
    store.close();
  }, 600_000);
});
