import { describe, expect, it } from "vitest";
import { MemoryBus } from "./memory-bus.ts";
import { NamespacedBus } from "./namespaced-bus.ts";
import type { OutRecord, TopicPartition } from "./bus.ts";

const rec = (key: string, n: number): OutRecord => ({ key, value: Uint8Array.of(n) });

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

  it("releases a record once every group has committed it, and a dropped unclaimed one at once", async () => {
    const bus = new MemoryBus({ capacity: 100 });
    const released: number[] = [];
    let gate!: () => void;
    const held = new Promise<void>((r) => (gate = r));
    await bus.subscribe("t", { group: "fast" }, async () => {});
    await bus.subscribe("t", { group: "slow" }, async () => held);
    await bus.publish("t", [{ ...rec("k", 1), release: () => released.push(1) }]);
    await new Promise((r) => setTimeout(r, 20));
    // The fast group is done; the slow one still holds the record.
    expect(released).toEqual([]);
    gate();
    await bus.drain();
    expect(released).toEqual([1]);

    const lone = new MemoryBus({ capacity: 1 });
    await lone.publish("nobody", [{ ...rec("k", 2), release: () => released.push(2) }]);
    await lone.publish("nobody", [{ ...rec("k", 3), release: () => released.push(3) }]);
    expect(released).toEqual([1, 2]);
    await bus.close();
    await lone.close();
  });

  it("does not release a record whose batch failed until it is delivered again and committed", async () => {
    const bus = new MemoryBus({ capacity: 10, retryDelayMs: 1 });
    const released: string[] = [];
    let attempts = 0;
    await bus.subscribe("t", { group: "g" }, async () => {
      attempts++;
      expect(released).toEqual([]);
      if (attempts < 3) throw new Error("store away");
    });
    await bus.publish("t", [{ ...rec("k", 1), release: () => released.push("r") }]);
    await bus.drain();
    expect(attempts).toBe(3);
    expect(released).toEqual(["r"]);
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

  it("redelivers a rejected batch until it succeeds (at-least-once), telling of each failure", async () => {
    const failures: number[] = [];
    const bus = new MemoryBus({
      capacity: 10,
      retryDelayMs: 1,
      onHandlerError: (_err, attempt) => void failures.push(attempt),
    });
    let attempts = 0;
    const ok: number[] = [];
    await bus.subscribe("t", { group: "g", maxBatch: 1 }, async (batch) => {
      if (batch[0]!.key === "flaky" && ++attempts < 3) throw new Error("store away");
      ok.push(batch[0]!.value[0]!);
    });
    await bus.publish("t", [rec("flaky", 1), rec("fine", 2)]);
    await bus.drain();
    expect(failures).toEqual([1, 2]);
    expect(ok).toEqual([1, 2]);
    await bus.close();
  });

  it("gives records their topic, partition, increasing offsets and a timestamp; tells of assign and revoke", async () => {
    const bus = new MemoryBus({ capacity: 10 });
    const events: string[] = [];
    const seen: { topic: string; partition: number; offset: string; timestamp: number }[] = [];
    const before = Date.now();
    const sub = await bus.subscribe(
      ["a", "b"],
      {
        group: "g",
        onAssign: (ps: TopicPartition[]) => void events.push(`assign ${ps.map((p) => p.topic).join(",")}`),
        onRevoke: (ps: TopicPartition[]) => void events.push(`revoke ${ps.map((p) => p.topic).join(",")}`),
      },
      async (batch) => {
        for (const { topic, partition, offset, timestamp } of batch)
          seen.push({ topic, partition, offset, timestamp });
      },
    );
    await bus.publish("a", [rec("k", 1), rec("k", 2)]);
    await bus.publish("b", [rec("k", 3)]);
    await bus.drain();
    await sub.stop();
    expect(events).toEqual(["assign a,b", "revoke a,b"]);
    expect(seen.map((r) => `${r.topic}:${r.partition}@${r.offset}`).sort()).toEqual([
      "a:0@0",
      "a:0@1",
      "b:0@0",
    ]);
    for (const r of seen) expect(r.timestamp).toBeGreaterThanOrEqual(before);
    await bus.close();
  });
});

describe("NamespacedBus", () => {
  it("prefixes topics and groups on the way out and strips them on the way in", async () => {
    const inner = new MemoryBus({ capacity: 10 });
    const a = new NamespacedBus(inner, "site-a.");
    const b = new NamespacedBus(inner, "site-b.");
    const seen: string[] = [];
    const assigned: string[] = [];
    await a.subscribe(
      "vigil.faces",
      { group: "embed", onAssign: (ps) => void assigned.push(...ps.map((p) => p.topic)) },
      async (rs) => void seen.push(...rs.map((r) => `${r.topic}:${r.value[0]}`)),
    );
    await a.publish("vigil.faces", [rec("k", 1)]);
    await b.publish("vigil.faces", [rec("k", 2)]);
    await inner.drain();
    expect(seen).toEqual(["vigil.faces:1"]);
    expect(assigned).toEqual(["vigil.faces"]);
    await inner.close();
  });
});
