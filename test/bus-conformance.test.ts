import { afterEach, describe, expect, it } from "vitest";
import type { Bus, BusRecord, OutRecord, Subscription, TopicPartition } from "../lib/bus/index.ts";
import { MemoryBus } from "../lib/bus/memory-bus.ts";
import { createTopic, testBus, testKafka, uniqueName } from "../lib/testing/kafka/index.ts";
import { until } from "../lib/testing/process.ts";

/**
 * What every Bus promises, run against the in-memory bus and against Kafka (the run's shared broker), so a stage
 * that works on one works on the other. Only where their semantics overlap: the memory bus has one partition per
 * topic and applies backpressure; Kafka has many partitions and rebalances (test/kafka-bus.test.ts).
 */
interface Harness {
  bus: Bus;
  partitions: number;
  /** A topic no other test uses, with `partitions` partitions. */
  topic(): Promise<string>;
}

const kafka = await testKafka();

const harnesses: { name: string; skip: boolean; open(): Promise<Harness> }[] = [
  {
    name: "MemoryBus",
    skip: false,
    open: async () => ({
      bus: new MemoryBus({ capacity: 1000, retryDelayMs: 20 }),
      partitions: 1,
      topic: async () => uniqueName("t"),
    }),
  },
  {
    name: "KafkaBus",
    skip: !kafka,
    open: async () => {
      const bus = testBus(kafka!.address);
      return {
        bus,
        partitions: 3,
        topic: async () => {
          const name = uniqueName("conformance");
          await createTopic(bus, name, 3);
          return name;
        },
      };
    },
  },
];

const rec = (key: string, n: number): OutRecord => ({ key, value: Uint8Array.of(n >> 8, n & 0xff) });
const num = (r: BusRecord) => (r.value[0]! << 8) | r.value[1]!;

/** Per key, the values in the order they were first handled. */
function firstSeenByKey(records: BusRecord[]): Map<string, number[]> {
  const byKey = new Map<string, number[]>();
  const seen = new Set<string>();
  for (const r of records) {
    const id = `${r.key}/${num(r)}`;
    if (seen.has(id)) continue;
    seen.add(id);
    byKey.set(r.key, [...(byKey.get(r.key) ?? []), num(r)]);
  }
  return byKey;
}

for (const h of harnesses) {
  describe.skipIf(h.skip)(`Bus conformance: ${h.name}`, () => {
    let harness: Harness;
    const subs: Subscription[] = [];
    const open = async () => (harness = await h.open());
    const subscribe = async (...args: Parameters<Bus["subscribe"]>) => {
      const sub = await harness.bus.subscribe(...args);
      subs.push(sub);
      return sub;
    };

    afterEach(async () => {
      await Promise.all(subs.splice(0).map((s) => s.stop()));
      await harness?.bus.close();
    });

    it("gives every group every record, in order per key, with topic, partition, offset and timestamp", async () => {
      await open();
      const topic = await harness.topic();
      const a: BusRecord[] = [];
      const b: BusRecord[] = [];
      const sizes: number[] = [];
      await subscribe(topic, { group: uniqueName("a"), maxBatch: 7 }, async (batch) => {
        sizes.push(batch.length);
        a.push(...batch);
      });
      await subscribe(topic, { group: uniqueName("b") }, async (batch) => void b.push(...batch));
      const before = Date.now();
      const keys = ["cam-1", "cam-2", "cam-3", "cam-4", "cam-5", "cam-6"];
      for (let i = 0; i < 60; i += 12) {
        await harness.bus.publish(
          topic,
          Array.from({ length: 12 }, (_, j) => rec(keys[(i + j) % keys.length]!, i + j)),
        );
      }
      const after = Date.now();
      await until("both groups to have every record", () => a.length >= 60 && b.length >= 60);

      for (const got of [a, b]) {
        expect(got.map(num).sort((x, y) => x - y)).toEqual(Array.from({ length: 60 }, (_, i) => i));
        const byKey = firstSeenByKey(got);
        for (const [key, values] of byKey) {
          expect(values, `order of ${key}`).toEqual([...values].sort((x, y) => x - y));
          // One key, one partition.
          expect(new Set(got.filter((r) => r.key === key).map((r) => r.partition)).size).toBe(1);
        }
        const lastOffset = new Map<number, bigint>();
        for (const r of got) {
          expect(r.topic).toBe(topic);
          expect(r.partition).toBeGreaterThanOrEqual(0);
          expect(r.partition).toBeLessThan(harness.partitions);
          expect(r.offset).toMatch(/^\d+$/);
          const offset = BigInt(r.offset);
          expect(offset > (lastOffset.get(r.partition) ?? -1n), "offsets grow within a partition").toBe(true);
          lastOffset.set(r.partition, offset);
          expect(r.timestamp).toBeGreaterThanOrEqual(before - 5);
          expect(r.timestamp).toBeLessThanOrEqual(after + 5);
        }
      }
      expect(Math.max(...sizes)).toBeLessThanOrEqual(7);
    });

    it("shares a group's records between its members: each handled once", async () => {
      await open();
      const topic = await harness.topic();
      const group = uniqueName("shared");
      const handled: number[][] = [[], []];
      for (const member of [0, 1]) {
        await subscribe(topic, { group, maxBatch: 5 }, async (batch) => {
          handled[member]!.push(...batch.map(num));
          await new Promise((r) => setTimeout(r, 5));
        });
      }
      await harness.bus.publish(
        topic,
        Array.from({ length: 40 }, (_, i) => rec(`cam-${i % 8}`, i)),
      );
      await until("every record handled", () => handled[0]!.length + handled[1]!.length >= 40);
      await new Promise((r) => setTimeout(r, 300));
      const all = [...handled[0]!, ...handled[1]!].sort((x, y) => x - y);
      expect(all).toEqual(Array.from({ length: 40 }, (_, i) => i));
    });

    it("delivers a rejected batch again after a pause, and nothing after it first (at-least-once)", async () => {
      await open();
      const topic = await harness.topic();
      const delivered: number[] = [];
      const ok: number[] = [];
      let failures = 0;
      await subscribe(topic, { group: uniqueName("retry"), maxBatch: 1 }, async (batch) => {
        const n = num(batch[0]!);
        delivered.push(n);
        if (n === 3 && failures < 2) {
          failures++;
          throw new Error("store away");
        }
        ok.push(n);
      });
      await harness.bus.publish(
        topic,
        Array.from({ length: 8 }, (_, i) => rec("cam-1", i)),
      );
      await until("every record handled", () => ok.length >= 8);
      expect(ok).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      expect(delivered).toEqual([0, 1, 2, 3, 3, 3, 4, 5, 6, 7]);
    });

    it("redelivers a whole rejected batch of several keys, losing none and keeping each key's order", async () => {
      await open();
      const topic = await harness.topic();
      const ok: BusRecord[] = [];
      let failed = false;
      await subscribe(topic, { group: uniqueName("retry-many"), maxBatch: 6 }, async (batch) => {
        if (!failed && batch.some((r) => num(r) >= 10)) {
          failed = true;
          throw new Error("transient");
        }
        ok.push(...batch);
      });
      await harness.bus.publish(
        topic,
        Array.from({ length: 30 }, (_, i) => rec(`cam-${i % 3}`, i)),
      );
      await until("every record handled", () => new Set(ok.map(num)).size >= 30);
      expect(failed).toBe(true);
      for (const [key, values] of firstSeenByKey(ok)) {
        expect(values, key).toEqual([...values].sort((x, y) => x - y));
      }
    });

    it("tells of assigned and revoked partitions; the batch in flight finishes and commits before the revoke", async () => {
      await open();
      const topic = await harness.topic();
      const group = uniqueName("hooks");
      const events: string[] = [];
      const first: number[] = [];
      let assigned: TopicPartition[] = [];
      let revoked: TopicPartition[] = [];
      let inFlight!: () => void;
      const started = new Promise<void>((r) => (inFlight = r));
      const sub = await subscribe(
        topic,
        {
          group,
          maxBatch: 100,
          onAssign: (ps) => {
            assigned = ps;
            events.push("assign");
          },
          onRevoke: (ps) => {
            revoked = ps;
            events.push("revoke");
          },
        },
        async (batch) => {
          events.push("batch");
          inFlight();
          await new Promise((r) => setTimeout(r, 400));
          first.push(...batch.map(num));
          events.push("batch done");
        },
      );
      expect(events).toEqual(["assign"]);
      const all = Array.from({ length: 12 }, (_, i) => i);
      await harness.bus.publish(
        topic,
        all.map((i) => rec(`cam-${i % 4}`, i)),
      );
      await started;
      await sub.stop();
      expect(events.slice(0, 3)).toEqual(["assign", "batch", "batch done"]);
      expect(events.at(-1)).toBe("revoke");
      const expected = Array.from({ length: harness.partitions }, (_, partition) => ({ topic, partition }));
      const sorted = (ps: TopicPartition[]) => [...ps].sort((x, y) => x.partition - y.partition);
      expect(sorted(assigned)).toEqual(expected);
      expect(sorted(revoked)).toEqual(expected);

      // What the stopped member handled was committed: the next member of the group gets only the rest.
      const rest: number[] = [];
      await subscribe(topic, { group }, async (batch) => void rest.push(...batch.map(num)));
      await until("the rest", () => first.length + rest.length >= all.length);
      await new Promise((r) => setTimeout(r, 300));
      expect([...first, ...rest].sort((x, y) => x - y)).toEqual(all);
    });
  });
}
