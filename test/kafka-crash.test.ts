import { describe, expect, it } from "vitest";
import { EmbeddingContract, Topics, vectorToBytes } from "../lib/contracts/index.ts";
import { cosine } from "../lib/geometry/index.ts";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import { alignedSampleFaces, faceRecord, type AlignedSample } from "../lib/testing/aligned-faces.ts";
import { sharedVision, testConfig } from "./helpers.ts";
import { collect, until, useKafka } from "./kafka-helpers.ts";

/**
 * Crash safety where users see it: a stage killed with SIGKILL mid-stream and started again must leave the same
 * sightings and alerts, by id, as if nothing had happened — no face lost, none counted twice.
 */
const harness = useKafka();
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
    const { samples, vectors, modelId } = await samplesWithVectors();
    const d = await deployment({ match: { alertCooldownS: 10 } });
    // Two matchers on the same embeddings, each with its own store and consumer group: one runs undisturbed,
    // the other is killed twice and restarted.
    const refFile = d.configFor("ref", {
      store: { path: `${d.dir}/ref.db` },
      service: { group: "match-ref" },
    });
    const crashFile = d.configFor("crash", {
      store: { path: `${d.dir}/crash.db` },
      service: { group: "match-crash" },
    });
    const alice = 0;
    const stranger = samples.findIndex((_, i) => i > 0 && cosine(vectors[i]!, vectors[alice]!) < 0.2);
    for (const file of [`${d.dir}/ref.db`, `${d.dir}/crash.db`]) {
      const store = new SqliteStore(file);
      await store.upsertPerson({ id: "alice", name: "Alice", watchlistId: "default" });
      await store.addFace({
        faceId: "alice:0",
        personId: "alice",
        modelId,
        vector: vectors[alice]!,
        source: "test",
      });
      store.close();
    }
    // Camera "door": alice for 6 s, nobody for 4 s (her track ends), a stranger for 3 s, alice again for 6 s
    // (past the 10 s cool-down: a second alert), faces 500 ms apart in capture time.
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
    const ref = d.start("match", {}, refFile);
    let crash = d.start("match", {}, crashFile);
    await Promise.all([ref.ready(), crash.ready()]);
    const consumed = async () => {
      const lag = await lagOf(d, "match-crash", Topics.embeddings);
      return plan.length - lag;
    };
    // In small steps, killing the crash matcher twice while alice's tracks are open.
    for (const [from, to, kill] of [
      [0, 5, true],
      [5, 8, false],
      [8, 24, true],
      [24, plan.length, false],
    ] as const) {
      await d.bus.publish(Topics.embeddings, records.slice(from, to));
      if (kill) {
        await until(
          "the crash matcher mid-track",
          async () => (await lagOf(d, "match-crash", Topics.embeddings)) < plan.length - from,
        );
        expect((await crash.kill("SIGKILL")).signal).toBe("SIGKILL");
        crash = d.start("match", {}, crashFile);
        await crash.ready();
      }
      await sleep(300);
    }
    await until(
      "both matchers through",
      async () =>
        (await lagOf(d, "match-ref", Topics.embeddings)) === 0 &&
        (await lagOf(d, "match-crash", Topics.embeddings)) === 0,
    );
    expect(await consumed()).toBe(plan.length);
    await sleep(1000);
    const read = async (file: string) => {
      const store = new SqliteStore(file);
      try {
        const sightings = (await store.browse({ limit: 100 })).items
          .map(
            (s) => `${s.id} faces=${s.faces} match=${s.match?.personId ?? "-"} unknown=${s.unknownId ?? "-"}`,
          )
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
    };
    const [a, b] = [await read(`${d.dir}/ref.db`), await read(`${d.dir}/crash.db`)];
    // Alice twice (an alert each time: the second pass is past the cool-down), the stranger once, unknown.
    expect(a.sightings).toHaveLength(3);
    expect(a.alerts).toHaveLength(2);
    expect(a.unknowns).toEqual([expect.stringMatching(/^unknown-[0-9a-f]{12} count=1 /)]);
    expect(b).toEqual(a);
    for (const p of [ref, crash]) expect((await p.kill("SIGTERM")).code).toBe(0);
    await d.raw.close();
  });
});
