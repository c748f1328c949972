import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig, shardIndex } from "../lib/config/index.ts";
import { FrameContract, Topics } from "../lib/contracts/index.ts";
import { generateVideo } from "../lib/media/generate.ts";
import { camerasOfShard, shardOf } from "../services/ingest/shards.ts";
import { collect, until, useKafka } from "./kafka-helpers.ts";
import { tempDir, testConfig } from "./helpers.ts";
import { MemoryBus } from "../lib/bus/index.ts";
import { serve as serveIngest } from "../services/ingest/main.ts";
import { setTimeout as delay } from "node:timers/promises";

describe("ingest shards: which process decodes a camera", () => {
  const ids = Array.from({ length: 2000 }, (_, i) => `cam-${i}`);

  it("every camera has exactly one shard, the same in every process, and the shards share them evenly", () => {
    for (const count of [1, 2, 3, 8]) {
      const shards = ids.map((id) => shardOf(id, count));
      expect(ids.map((id) => shardOf(id, count))).toEqual(shards);
      for (let k = 0; k < count; k++) {
        const share = shards.filter((s) => s === k).length / ids.length;
        expect(share, `shard ${k} of ${count}`).toBeGreaterThan(0.8 / count);
        expect(share, `shard ${k} of ${count}`).toBeLessThan(1.2 / count);
      }
      const parts = Array.from({ length: count }, (_, k) =>
        camerasOfShard(
          ids.map((id) => ({ id })),
          k,
          count,
        ),
      );
      expect(
        parts
          .flat()
          .map((c) => c.id)
          .sort(),
      ).toEqual([...ids].sort());
    }
  });

  it("adding a shard moves only the cameras the new shard takes (about 1 in n + 1)", () => {
    const before = ids.map((id) => shardOf(id, 4));
    const after = ids.map((id) => shardOf(id, 5));
    const moved = ids.filter((_, i) => before[i] !== after[i]);
    expect(moved.every((id) => shardOf(id, 5) === 4)).toBe(true);
    expect(moved.length / ids.length).toBeGreaterThan(0.15);
    expect(moved.length / ids.length).toBeLessThan(0.25);
  });

  it("takes its index from the pod's name where none is set, and refuses one outside the count, naming the key", () => {
    const shard = (env: Record<string, string>) => loadConfig({ env }).ingest.shard;
    expect(shardIndex(shard({ VIGIL_INGEST__SHARD__POD: "ingest-2", VIGIL_INGEST__SHARD__COUNT: "3" }))).toBe(
      2,
    );
    expect(() => shard({ VIGIL_INGEST__SHARD__POD: "ingest-3", VIGIL_INGEST__SHARD__COUNT: "3" })).toThrow(
      /ingest\.shard\.pod: shard index 3 must be below the shard count 3 .*VIGIL_INGEST__SHARD__POD/,
    );
    expect(() => shard({ VIGIL_INGEST__SHARD__POD: "ingest", VIGIL_INGEST__SHARD__COUNT: "3" })).toThrow(
      /ingest\.shard\.pod: pod name ingest does not end in -<ordinal>/,
    );
    expect(() =>
      loadConfig({ env: { VIGIL_INGEST__SHARD__INDEX: "2", VIGIL_INGEST__SHARD__COUNT: "2" } }),
    ).toThrow(/ingest\.shard\.index: shard index 2 must be below the shard count 2/);
    expect(shardIndex(loadConfig({ env: {} }).ingest.shard)).toBe(0);
  });
});

describe("an ingest shard the hashing gives no camera", () => {
  it("stays up and ready until stopped, publishing nothing", async () => {
    const cameras = [{ id: "only", url: "/nonexistent.mp4" }];
    const idle = shardOf("only", 2) === 0 ? 1 : 0;
    const config = testConfig({
      "service.host": "127.0.0.1",
      "service.port": 0,
      cameras,
      "ingest.shard": { index: idle, count: 2 },
    });
    const bus = new MemoryBus({ capacity: 8 });
    const published: string[] = [];
    for (const topic of [Topics.frames, Topics.cameraStatus])
      await bus.subscribe(
        topic,
        { group: "watch" },
        async (rs) => void published.push(...rs.map((r) => r.topic)),
      );
    const service = await serveIngest(config, bus);
    try {
      const ready = await fetch(`http://127.0.0.1:${service.address.port}/readyz`);
      expect(ready.status).toBe(200);
      const early = await Promise.race([service.exited.then(() => "exited"), delay(1500, "running")]);
      expect(early).toBe("running");
      await bus.drain();
      expect(published).toEqual([]);
    } finally {
      expect(await service.stop("test")).toBe(0);
    }
  });
});

const harness = useKafka();

describe("two ingest processes over a real Kafka broker share one camera list", () => {
  it("each decodes only its shard's cameras, and together they decode every camera once", async (ctx) => {
    if (!harness.kafka()) return ctx.skip();
    const media = tempDir("vigil-shards-");
    const cameras = ["gate", "lobby", "dock", "roof", "yard", "hall"].map((id) => {
      const url = path.join(media, `${id}.mp4`);
      generateVideo("testsrc2=size=320x240:rate=25:duration=1", url);
      return { id, url };
    });
    const mine = (k: number) => camerasOfShard(cameras, k, 2).map((c) => c.id);
    // The hashing must give both processes work here, or the test would prove nothing.
    expect(mine(0).length).toBeGreaterThan(0);
    expect(mine(1).length).toBeGreaterThan(0);

    const d = await harness.deployment({ cameras });
    const frames = await collect(d.bus, Topics.frames);
    const camerasSeen = () => new Set(frames.records.map((r) => FrameContract.decode(r.value).cameraId));
    for (const k of [0, 1]) {
      const ingest = d.start("ingest", {
        VIGIL_INGEST__SHARD__INDEX: String(k),
        VIGIL_INGEST__SHARD__COUNT: "2",
      });
      // Its files end, so each process finishes by itself.
      expect((await ingest.exited).code).toBe(0);
      const expected = [...mine(0), ...(k === 1 ? mine(1) : [])].sort();
      await until(
        `frames of shard ${k}'s cameras`,
        () => [...camerasSeen()].sort().join() === expected.join(),
      );
      expect([...camerasSeen()].sort()).toEqual(expected);
    }
    // One second at 5 fps per camera: each camera's frames published once, by one process.
    const perCamera = new Map<string, number>();
    for (const r of frames.records) {
      const id = FrameContract.decode(r.value).cameraId;
      perCamera.set(id, (perCamera.get(id) ?? 0) + 1);
    }
    for (const c of cameras) expect(perCamera.get(c.id), c.id).toBeLessThanOrEqual(6);
    await frames.stop();
  }, 180_000);
});
