import { describe, expect, it } from "vitest";
import { MemoryBus } from "./memory-bus.ts";
import type { BusRecord } from "./bus.ts";

const rec = (key: string, n: number): BusRecord => ({ key, value: Uint8Array.of(n) });

describe("MemoryBus", () => {
  it("delivers in order per topic, in batches, to every group", async () => {
    const bus = new MemoryBus({ capacity: 100 });
    const a: number[] = [];
    const b: number[] = [];
    const sizes: number[] = [];
    await bus.subscribe("t", { group: "a", maxBatch: 4 }, async (batch) => {
      sizes.push(batch.length);
      a.push(...batch.map((r) => r.value[0]!));
    });
    await bus.subscribe("t", { group: "b" }, async (batch) => {
      b.push(...batch.map((r) => r.value[0]!));
    });
    await bus.publish(
      "t",
      Array.from({ length: 10 }, (_, i) => rec("k", i)),
    );
    await bus.drain();
    expect(a).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(b).toEqual(a);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(4);
    await bus.close();
  });

  it("bounds a topic by its own capacity when one is given", async () => {
    const bus = new MemoryBus({ capacity: 100, topicCapacity: { small: 2 } });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const got: number[] = [];
    await bus.subscribe("small", { group: "g", maxBatch: 1 }, async (b) => {
      await gate;
      got.push(...b.map((r) => r.value[0]!));
    });
    let published = 0;
    void (async () => {
      for (let i = 0; i < 5; i++) {
        await bus.publish("small", [rec("k", i)]);
        published++;
      }
    })();
    await new Promise((r) => setTimeout(r, 30));
    expect(published).toBe(2);
    release();
    await new Promise((r) => setTimeout(r, 30));
    await bus.drain();
    expect(got).toEqual([0, 1, 2, 3, 4]);
    await bus.close();
  });

  it("never blocks a producer on a topic nobody consumes; keeps the newest records for a late subscriber", async () => {
    const bus = new MemoryBus({ capacity: 3 });
    await bus.publish(
      "status",
      [0, 1, 2, 3, 4, 5].map((n) => rec("k", n)),
    );
    const got: number[] = [];
    await bus.subscribe(
      "status",
      { group: "late" },
      async (b) => void got.push(...b.map((r) => r.value[0]!)),
    );
    await bus.drain();
    expect(got).toEqual([3, 4, 5]);
    await bus.close();
  });

  it("keeps records published before anyone subscribed", async () => {
    const bus = new MemoryBus({ capacity: 10 });
    await bus.publish("t", [rec("k", 7)]);
    const got: number[] = [];
    await bus.subscribe(
      "t",
      { group: "late" },
      async (batch) => void got.push(...batch.map((r) => r.value[0]!)),
    );
    await bus.drain();
    expect(got).toEqual([7]);
    await bus.close();
  });

  it("makes publishers wait when a queue is full, never growing past capacity", async () => {
    const bus = new MemoryBus({ capacity: 3 });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let maxSeen = 0;
    const topicSize = () =>
      (bus as unknown as { topics: Map<string, { groups: Map<string, { size: number }> }> }).topics
        .get("t")!
        .groups.get("g")!.size;
    await bus.subscribe("t", { group: "g", maxBatch: 1 }, async () => {
      maxSeen = Math.max(maxSeen, topicSize());
      await gate;
    });
    let published = 0;
    const publishing = (async () => {
      for (let i = 0; i < 10; i++) {
        await bus.publish("t", [rec("k", i)]);
        published++;
      }
    })();
    await new Promise((r) => setTimeout(r, 50));
    expect(published).toBe(3);
    release();
    await publishing;
    await bus.drain();
    expect(published).toBe(10);
    expect(maxSeen).toBeLessThanOrEqual(3);
    await bus.close();
  });

  it("redelivers a failed batch, then dead-letters it with the error", async () => {
    const dead: string[] = [];
    const bus = new MemoryBus({
      capacity: 10,
      maxAttempts: 3,
      retryDelayMs: 1,
      onDeadLetter: async (topic, record, err) => void dead.push(`${topic}/${record.key}: ${err.message}`),
    });
    let attempts = 0;
    const ok: number[] = [];
    await bus.subscribe("t", { group: "g", maxBatch: 1 }, async (batch) => {
      if (batch[0]!.key === "poison") {
        attempts++;
        throw new Error("boom");
      }
      ok.push(batch[0]!.value[0]!);
    });
    await bus.publish("t", [rec("poison", 1), rec("fine", 2)]);
    await bus.drain();
    expect(attempts).toBe(3);
    expect(dead).toEqual(["t/poison: boom"]);
    expect(ok).toEqual([2]);
    await bus.close();
  });
});
