import { describe, expect, it } from "vitest";
import { EmbeddingContract, Topics, vectorToBytes } from "../lib/contracts/index.ts";
import { cosine } from "../lib/geometry/index.ts";
import type { Config } from "../lib/config/index.ts";
import { openStore } from "../lib/store/open-store.ts";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import type { ServiceProcess } from "../lib/testing/service-process.ts";
import { alignedSampleFaces, faceRecord, type AlignedSample } from "../lib/testing/aligned-faces.ts";
import { sharedVision, testConfig } from "./helpers.ts";
import { collect, until, useKafka } from "./kafka-helpers.ts";
import { usePostgres } from "./postgres-helpers.ts";
import { useQdrant } from "./qdrant-helpers.ts";

/**
 * Crash safety where users see it: a stage killed with SIGKILL mid-stream and started again must leave the same
 * sightings and alerts, by id, as if nothing had happened — no face lost, none counted twice.
 */
const harness = useKafka();
const qdrant = useQdrant("match replicas on Qdrant with alerts in PostgreSQL");
const postgres = usePostgres("match replicas on Qdrant with alerts in PostgreSQL");
const deployment = harness.deployment;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function samplesWithVectors() {
  const vision = await sharedVision();
  const samples = await alignedSampleFaces(testConfig(), vision);
  const vectors = await vision.embedder.embed(
    samples.map((s) => ({ width: s.cropSize.width, height: s.cropSize.height, data: s.crop })),
  );
  return { samples, vectors, modelId: vision.embedder.modelId };
}

async function lagOf(d: Awaited<ReturnType<typeof deployment>>, group: string, topic: string) {
  return (await d.bus.lag(group, topic)).reduce((n, p) => n + p.lag, 0);
}

describe("crash safety over a real Kafka broker", () => {
  it("(b) embed killed with SIGKILL mid-stream and restarted: every face that entered yields exactly one sighting", async (ctx) => {
    if (!harness.kafka()) return ctx.skip();
    const { samples } = await samplesWithVectors();
    const d = await deployment({ embed: { maxBatch: 4 } });
    const embeddings = await collect(d.bus, Topics.embeddings);
    const match = d.start("match");
    let embed = d.start("embed");
    await Promise.all([match.ready(), embed.ready()]);
    // One face per camera, so each face is its own track and its own sighting.
    const total = 30;
    const t0 = Date.now();
    const faces = Array.from({ length: total }, (_, i) =>
      faceRecord(samples[i % samples.length]!, `cam-${i}`, i, t0 + i),
    );
    await d.bus.publish(Topics.faces, faces);
    await until("the first embeddings", () => embeddings.records.length >= 4);
    expect((await embed.kill("SIGKILL")).signal).toBe("SIGKILL");
    embed = d.start("embed");
    await embed.ready();
    const ids = () => new Set(embeddings.records.map((r) => EmbeddingContract.decode(r.value).faceId));
    await until("every face embedded", () => ids().size === total);
    // A later face closes every track (their time-out passes) and stays open itself.
    await d.bus.publish(Topics.faces, [faceRecord(samples[0]!, "sentinel", 999, t0 + 60_000)]);
    await until(
      "the match group caught up",
      async () =>
        (await lagOf(d, "match", Topics.embeddings)) === 0 && (await lagOf(d, "embed", Topics.faces)) === 0,
    );
    await sleep(1000);
    const store = new SqliteStore(d.config.store.path);
    try {
      const page = await store.browse({ limit: 100 });
      const sightings = page.items;
      expect(sightings.map((s) => s.id).sort()).toEqual(
        Array.from({ length: total }, (_, i) => `sighting:cam-${i}:${i}:0`).sort(),
      );
      // Redelivered embeddings were recognised, not counted again.
      for (const s of sightings) expect(s.faces).toBe(1);
    } finally {
      store.close();
    }
    for (const p of [match, embed]) expect((await p.kill("SIGTERM")).code).toBe(0);
    await embeddings.stop();
    await d.raw.close();
  });

  it("(c) match killed with SIGKILL mid-track and restarted: the same sightings and alerts, by id, as an uninterrupted run", async (ctx) => {
    if (!harness.kafka()) return ctx.skip();
    const scene = await aliceScene();
    const d = await deployment({ match: { alertCooldownS: 10 } });
    // Two matchers on the same embeddings, each with its own store and consumer group: one runs undisturbed,
    // the other is killed twice and restarted.
    const stores = { ref: { path: `${d.dir}/ref.db` }, crash: { path: `${d.dir}/crash.db` } };
    for (const store of Object.values(stores))
      await enrolAlice(testConfig({ "store.path": store.path }), scene);
    const refFile = d.configFor("ref", { store: stores.ref, service: { group: "match-ref" } });
    const crashFile = d.configFor("crash", { store: stores.crash, service: { group: "match-crash" } });
    const ref = d.start("match", {}, refFile);
    let crash = d.start("match", {}, crashFile);
    await Promise.all([ref.ready(), crash.ready()]);
    await playScene(d, scene, "match-crash", async () => {
      expect((await crash.kill("SIGKILL")).signal).toBe("SIGKILL");
      crash = d.start("match", {}, crashFile);
      await crash.ready();
    });
    const a = await outcome(testConfig({ "store.path": stores.ref.path }));
    const b = await outcome(testConfig({ "store.path": stores.crash.path }));
    // Alice twice (an alert each time: the second pass is past the cool-down), the stranger once, unknown.
    expect(a.sightings).toHaveLength(3);
    expect(a.alerts).toHaveLength(2);
    expect(a.unknowns).toEqual([expect.stringMatching(/^unknown-[0-9a-f]{12} count=1 /)]);
    expect(b).toEqual(a);
    for (const p of [ref, crash]) expect((await p.kill("SIGTERM")).code).toBe(0);
    await d.raw.close();
  });

  it.skipIf(qdrant.skip !== undefined || postgres.skip !== undefined)(
    "(d) two match replicas on Qdrant with alerts in PostgreSQL, the one holding the camera killed: the other takes it over, the same sightings and alerts as an uninterrupted run",
    async (ctx) => {
      if (!harness.kafka()) return ctx.skip();
      const scene = await aliceScene();
      const d = await deployment({ match: { alertCooldownS: 10 } });
      // Each side its own collections, records database and crops: a deployment of its own.
      const side = async (name: string) => {
        const { url, prefix } = await qdrant.endpoint();
        return {
          kind: "qdrant",
          qdrantUrl: url,
          qdrantPrefix: prefix,
          records: { kind: "postgres", url: await postgres.database() },
          crops: { kind: "folder", dir: `${d.dir}/${name}-crops` },
        };
      };
      const stores = { ref: await side("ref"), pair: await side("pair") };
      const config = (store: object) => testConfig({ store });
      for (const store of Object.values(stores)) await enrolAlice(config(store), scene);
      const refFile = d.configFor("ref", { store: stores.ref, service: { group: "match-ref" } });
      const pairFile = d.configFor("pair", { store: stores.pair, service: { group: "match-pair" } });
      const ref = d.start("match", {}, refFile);
      const pair = [d.start("match", {}, pairFile), d.start("match", {}, pairFile)];
      await Promise.all([ref, ...pair].map((p) => p.ready()));
      let kills = 0;
      let killed: ServiceProcess | undefined;
      await playScene(d, scene, "match-pair", async () => {
        // The camera's partition is one replica's: kill that one (the one whose process has read embeddings);
        // the group rebalances and the other loads the partition's checkpoint and goes on.
        if (kills++ > 0) return;
        killed = await partitionOwner(pair);
        expect((await killed.kill("SIGKILL")).signal).toBe("SIGKILL");
      });
      // The survivor took the camera over: it handled batches it had none of before.
      const survivor = pair.find((p) => p !== killed)!;
      expect(await batchesOf(survivor)).toBeGreaterThan(0);
      const a = await outcome(config(stores.ref));
      const b = await outcome(config(stores.pair));
      expect(a.sightings).toHaveLength(3);
      expect(a.alerts).toHaveLength(2);
      expect(b).toEqual(a);
      for (const p of [ref, ...pair]) await p.kill("SIGTERM");
      await d.raw.close();
    },
  );

  it.skipIf(qdrant.skip !== undefined || postgres.skip !== undefined)(
    "(e) match on Qdrant with its records in PostgreSQL, the database stopped mid-track and started again: not ready meanwhile, then the same sightings and alerts as an undisturbed matcher",
    async (ctx) => {
      if (!harness.kafka()) return ctx.skip();
      const scene = await aliceScene();
      const d = await deployment({ match: { alertCooldownS: 10 } });
      // The reference keeps everything in SQLite: the database going away is only the other one's trouble.
      const ref = { path: `${d.dir}/ref.db` };
      const { url, prefix } = await qdrant.endpoint();
      const subject = {
        kind: "qdrant",
        qdrantUrl: url,
        qdrantPrefix: prefix,
        records: { kind: "postgres", url: await postgres.database() },
        crops: { kind: "folder", dir: `${d.dir}/subject-crops` },
      };
      await enrolAlice(testConfig({ "store.path": ref.path }), scene);
      await enrolAlice(testConfig({ store: subject }), scene);
      const refProcess = d.start(
        "match",
        {},
        d.configFor("ref", { store: ref, service: { group: "match-ref" } }),
      );
      const matcher = d.start(
        "match",
        {},
        d.configFor("pg", { store: subject, service: { group: "match-pg" } }),
      );
      await Promise.all([refProcess.ready(), matcher.ready()]);
      const readiness = async () => {
        const res = await fetch(`http://127.0.0.1:${await matcher.port}/readyz`);
        return {
          status: res.status,
          checks: ((await res.json()) as { checks: Record<string, boolean> }).checks,
        };
      };
      let outages = 0;
      await playScene(d, scene, "match-pg", async () => {
        if (outages++ > 0) return;
        // Away for a while, with alice's track open and embeddings of it still to come: they fail and wait.
        await postgres.server().stop();
        await until("match not ready", async () => (await readiness()).status === 503, 15_000);
        expect((await readiness()).checks.records).toBe(false);
        await d.bus.publish(Topics.embeddings, []);
        await sleep(2000);
        expect(matcher.child.exitCode).toBeNull();
        await postgres.server().start();
        await until("match ready again", async () => (await readiness()).status === 200, 30_000);
      });
      expect(matcher.child.exitCode).toBeNull();
      const a = await outcome(testConfig({ "store.path": ref.path }));
      const b = await outcome(testConfig({ store: subject }));
      expect(a.sightings).toHaveLength(3);
      expect(a.alerts).toHaveLength(2);
      expect(b).toEqual(a);
      for (const p of [refProcess, matcher]) await p.kill("SIGTERM");
      await d.raw.close();
    },
  );
});

type Deployment = Awaited<ReturnType<typeof deployment>>;
type Scene = Awaited<ReturnType<typeof aliceScene>>;

/**
 * Camera "door": alice for 6 s, nobody for 4 s (her track ends), a stranger for 3 s, alice again for 6 s (past a
 * 10 s cool-down: a second alert), faces 500 ms apart in capture time; the embeddings as embed publishes them.
 */
async function aliceScene() {
  const { samples, vectors, modelId } = await samplesWithVectors();
  const alice = 0;
  const stranger = samples.findIndex((_, i) => i > 0 && cosine(vectors[i]!, vectors[alice]!) < 0.2);
  const t0 = Date.now() - 60_000;
  const plan: { who: number; ts: number }[] = [];
  for (let i = 0; i < 12; i++) plan.push({ who: alice, ts: t0 + i * 500 });
  for (let i = 0; i < 6; i++) plan.push({ who: stranger, ts: t0 + 10_000 + i * 500 });
  for (let i = 0; i < 12; i++) plan.push({ who: alice, ts: t0 + 16_000 + i * 500 });
  plan.push({ who: stranger, ts: t0 + 40_000 }); // closes the last track
  const records = plan.map((p, seq) => {
    const s: AlignedSample = samples[p.who]!;
    return {
      key: "door",
      value: EmbeddingContract.encode({
        faceId: `door:${seq}:0`,
        cameraId: "door",
        frameSeq: seq,
        captureTs: p.ts,
        frameWidth: 1280,
        frameHeight: 720,
        box: s.box,
        landmarks: s.landmarks,
        quality: s.quality,
        detectorModel: s.detectorModel,
        cropSize: s.cropSize,
        modelId,
        dim: vectors[p.who]!.length,
        vector: vectorToBytes(vectors[p.who]!),
        crop: s.crop,
      }),
    };
  });
  return { records, aliceVector: vectors[alice]!, modelId };
}

async function enrolAlice(config: Config, scene: Scene) {
  const store = openStore(config);
  try {
    await store.upsertPerson({ id: "alice", name: "Alice", watchlistId: "default" });
    await store.addFace({
      faceId: "alice:0",
      personId: "alice",
      modelId: scene.modelId,
      vector: scene.aliceVector,
      source: "test",
    });
  } finally {
    store.close();
  }
}

/**
 * Publishes the scene in small steps, calling `disrupt` twice while alice's tracks are open (once `group` has
 * read into the step), then waits until `group` and match-ref have read everything.
 */
async function playScene(d: Deployment, scene: Scene, group: string, disrupt: () => Promise<void>) {
  const total = scene.records.length;
  for (const [from, to, kill] of [
    [0, 5, true],
    [5, 8, false],
    [8, 24, true],
    [24, total, false],
  ] as const) {
    await d.bus.publish(Topics.embeddings, scene.records.slice(from, to));
    if (kill) {
      await until(
        `${group} mid-track`,
        async () => (await lagOf(d, group, Topics.embeddings)) < total - from,
      );
      await disrupt();
    }
    await sleep(300);
  }
  await until(
    "both matchers through",
    async () =>
      (await lagOf(d, "match-ref", Topics.embeddings)) === 0 &&
      (await lagOf(d, group, Topics.embeddings)) === 0,
  );
  await sleep(1000);
}

/** The sightings, alerts and unknown identities a matcher left, as comparable lines. */
async function outcome(config: Config) {
  const store = openStore(config);
  try {
    const sightings = (await store.browse({ limit: 100 })).items
      .map((s) => `${s.id} faces=${s.faces} match=${s.match?.personId ?? "-"} unknown=${s.unknownId ?? "-"}`)
      .sort();
    const alerts = (await store.listAlerts({ limit: 100 })).items.map((a) => a.id).sort();
    // The stranger's identity: assigned once, whatever the crashes replayed.
    const unknowns = (await store.unknowns.listUnknowns({ limit: 100 })).items.map(
      (u) => `${u.id} count=${u.count} cameras=${u.cameras.join(",")}`,
    );
    return { sightings, alerts, unknowns };
  } finally {
    store.close();
  }
}

/** Batches a match process has handled, from its metrics. */
async function batchesOf(p: ServiceProcess): Promise<number> {
  const m = /vigil_batch_size_count\{[^}]*\} (\d+)/.exec(await p.metrics());
  return m ? Number(m[1]) : 0;
}

/**
 * Of two replicas in one group, the one that has handled the camera's partition (its metrics say so once its
 * first batch is counted, just after the commit the caller saw).
 */
async function partitionOwner(pair: ServiceProcess[]): Promise<ServiceProcess> {
  let counts: number[] = [];
  await until("a replica's first batch", async () => {
    counts = await Promise.all(pair.map(batchesOf));
    return counts.some((n) => n > 0);
  });
  expect(
    counts.filter((n) => n > 0),
    "one replica holds the camera's partition",
  ).toHaveLength(1);
  return counts[0]! > 0 ? pair[0]! : pair[1]!;
}
