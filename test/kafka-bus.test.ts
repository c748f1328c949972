import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import type { BusRecord, OutRecord, Subscription, TopicPartition } from "../lib/bus/index.ts";
import type { KafkaBus } from "../lib/bus/kafka-bus.ts";
import { createTopic, testBus, testKafka, uniqueName } from "../lib/testing/kafka/index.ts";
import { until } from "../lib/testing/process.ts";

/**
 * What only Kafka has: partitions shared by the members of a group and moved by rebalances, members that die
 * without a word, and a broker that goes away and comes back. Against the run's shared broker (a real one).
 */
const kafka = await testKafka();

const rec = (key: string, n: number): OutRecord => ({ key, value: Buffer.from(String(n)) });
const num = (r: BusRecord) => Number(Buffer.from(r.value).toString());
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Values per key in the order first handled must rise: no key's records overtook each other. */
function expectOrderPerKey(records: BusRecord[]) {
  const last = new Map<string, number>();
  const seen = new Set<number>();
  for (const r of records) {
    const n = num(r);
    if (seen.has(n)) continue;
    seen.add(n);
    expect(n, `order of ${r.key}`).toBeGreaterThan(last.get(r.key) ?? -1);
    last.set(r.key, n);
  }
}

const describeKafka = describe.skipIf(!kafka);

describeKafka("KafkaBus on a real broker", () => {
  const buses: KafkaBus[] = [];
  const subs: Subscription[] = [];
  const open = (options: Parameters<typeof testBus>[1] = {}) => {
    const bus = testBus(kafka!.address, options);
    buses.push(bus);
    return bus;
  };

  afterEach(async () => {
    await Promise.all(subs.splice(0).map((s) => s.stop()));
    await Promise.all(buses.splice(0).map((b) => b.close()));
  });

  it("splits a group's partitions between two members; one joining mid-stream loses no record", async () => {
    const a = open();
    const b = open();
    const topic = uniqueName("rebalance");
    await createTopic(a, topic, 6);
    const group = uniqueName("g");
    const handled: { member: string; record: BusRecord }[] = [];
    const events: string[] = [];
    const owned = { a: [] as TopicPartition[], b: [] as TopicPartition[] };
    const member = (name: "a" | "b") => ({
      group,
      maxBatch: 8,
      onAssign: (ps: TopicPartition[]) => {
        owned[name] = ps;
        events.push(`${name} assign ${ps.length}`);
      },
      onRevoke: (ps: TopicPartition[]) => {
        owned[name] = [];
        events.push(`${name} revoke ${ps.length}`);
      },
    });
    const handler = (name: string) => async (records: BusRecord[]) => {
      for (const record of records) handled.push({ member: name, record });
      await sleep(2);
    };
    subs.push(await a.subscribe(topic, member("a"), handler("a")));

    const total = 300;
    let published = 0;
    const publishing = (async () => {
      for (; published < total; published += 5) {
        await a.publish(
          topic,
          Array.from({ length: 5 }, (_, i) => rec(`cam-${(published + i) % 12}`, published + i)),
        );
        await sleep(10);
      }
    })();
    await until("some records handled by the first member", () => handled.length >= 60);
    subs.push(await b.subscribe(topic, member("b"), handler("b")));
    await publishing;
    await until("every record handled", () => new Set(handled.map((h) => num(h.record))).size >= total);

    const values = handled.map((h) => num(h.record));
    expect(new Set(values).size).toBe(total);
    // Eager rebalance with commit-before-revoke: nothing handled twice either.
    expect(values.length, "records handled twice").toBe(total);
    expectOrderPerKey(handled.map((h) => h.record));
    expect(events.slice(0, 2)).toEqual(["a assign 6", "a revoke 6"]);
    expect(owned.a.length + owned.b.length).toBe(6);
    expect(owned.a.length).toBeGreaterThan(0);
    expect(owned.b.length).toBeGreaterThan(0);
    const keys = (m: string) => new Set(handled.filter((h) => h.member === m).map((h) => h.record.partition));
    const lateA = new Set(owned.a.map((p) => p.partition));
    for (const p of keys("b")) expect(lateA.has(p), `partition ${p} owned by both`).toBe(false);
    expect(handled.some((h) => h.member === "b")).toBe(true);
  });

  it("gathers the partitions of a fetch into batches of up to maxBatch; lag counts what is not committed", async () => {
    const bus = open();
    const topic = uniqueName("gather");
    await createTopic(bus, topic, 4);
    await bus.publish(
      topic,
      Array.from({ length: 40 }, (_, i) => rec(`cam-${i % 8}`, i)),
    );
    const group = uniqueName("g");
    const lagBefore = await bus.lag(group, topic);
    expect(lagBefore.map((l) => l.partition)).toEqual([0, 1, 2, 3]);
    expect(lagBefore.reduce((s, l) => s + l.lag, 0)).toBe(40);
    const batches: BusRecord[][] = [];
    subs.push(await bus.subscribe(topic, { group, maxBatch: 10 }, async (b) => void batches.push(b)));
    await until("every record", () => batches.flat().length >= 40);
    expect(Math.max(...batches.map((b) => b.length))).toBeLessThanOrEqual(10);
    expect(
      batches.some((b) => new Set(b.map((r) => r.partition)).size > 1),
      "a batch spans partitions",
    ).toBe(true);
    expect(batches.filter((b) => b.length === 10).length).toBeGreaterThanOrEqual(3);
    let lag = await bus.lag(group, topic);
    for (let i = 0; i < 40 && lag.some((l) => l.lag > 0); i++) {
      await sleep(50);
      lag = await bus.lag(group, topic);
    }
    expect(lag.reduce((s, l) => s + l.lag, 0)).toBe(0);
  });

  it("delivers the batch of a member killed before it committed (kill -9) to the rest of the group", async () => {
    const bus = open();
    const topic = uniqueName("killed");
    await createTopic(bus, topic, 2);
    await bus.publish(
      topic,
      Array.from({ length: 10 }, (_, i) => rec(`cam-${i % 4}`, i)),
    );
    const group = uniqueName("g");
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "lib/testing/kafka/member.ts", kafka!.address, topic, group, "hang"],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    const exited = new Promise((r) => child.once("exit", r));
    let childOffsets: string[] = [];
    try {
      const lines = createInterface({ input: child.stdout! });
      for await (const line of lines) {
        const msg = JSON.parse(line) as { offsets?: string[] };
        if (msg.offsets) {
          childOffsets = msg.offsets;
          break;
        }
      }
      expect(childOffsets.length).toBeGreaterThan(0);
      // Handed over, never committed: the group still owes every record.
      expect((await bus.lag(group, topic)).reduce((s, l) => s + l.lag, 0)).toBe(10);
    } finally {
      child.kill("SIGKILL");
      await exited;
    }
    const got: BusRecord[] = [];
    const started = Date.now();
    subs.push(await bus.subscribe(topic, { group }, async (b) => void got.push(...b)));
    await until("the dead member's records", () => got.length >= 10, 30_000);
    const offsets = new Set(got.map((r) => `${r.partition}@${r.offset}`));
    for (const o of childOffsets) expect(offsets.has(o), `redelivered ${o}`).toBe(true);
    expect(got.map(num).sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // The group waited for the dead member's session (3 s) to expire, not for ever.
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it.skipIf(!kafka?.controllable)(
    "resumes publishing and consuming by itself when the broker stops and comes back, losing nothing",
    async () => {
      const bus = open();
      const topic = uniqueName("outage");
      await createTopic(bus, topic, 3);
      const handled: BusRecord[] = [];
      const assigns: number[] = [];
      subs.push(
        await bus.subscribe(
          topic,
          { group: uniqueName("g"), maxBatch: 16, onAssign: (ps) => void assigns.push(ps.length) },
          async (b) => void handled.push(...b),
        ),
      );
      const acked: number[] = [];
      let stopPublishing = false;
      let publishError: unknown;
      const publishing = (async () => {
        for (let i = 0; !stopPublishing; i++) {
          await bus.publish(topic, [rec(`cam-${i % 6}`, i)]);
          acked.push(i);
          await sleep(20);
        }
      })().catch((err) => (publishError = err));

      await until("records flowing", () => handled.length >= 20);
      expect(bus.healthy()).toBe(true);
      await kafka!.stop();
      let stoppedAt: number, duringOutage: number;
      try {
        stoppedAt = acked.length;
        await until("the bus to notice", () => !bus.healthy(), 10_000);
        await sleep(2_000);
        duringOutage = acked.length;
      } finally {
        await kafka!.start();
      }
      await until("the bus to see the broker again", () => bus.healthy(), 30_000);
      await until("publishing to resume", () => acked.length >= duringOutage + 30, 60_000);
      stopPublishing = true;
      await publishing;
      expect(publishError).toBeUndefined();
      // Publishes waited through the outage rather than failing.
      expect(duringOutage - stoppedAt).toBeLessThanOrEqual(1);
      await until("every acknowledged record handled", () => {
        const seen = new Set(handled.map(num));
        return acked.every((n) => seen.has(n));
      });
      expectOrderPerKey(handled);
      expect(assigns.length).toBeGreaterThanOrEqual(1);
    },
  );

  it("refuses to publish to or subscribe to a topic that does not exist, saying so", async () => {
    const bus = open();
    await expect(bus.publish(uniqueName("missing"), [rec("k", 1)])).rejects.toThrow(/does not exist/);
    await expect(bus.subscribe(uniqueName("missing"), { group: "g" }, async () => {})).rejects.toThrow(
      /missing \(create the topics with `vigil topics create`\)/,
    );
  });

  it("is unhealthy when no broker answers, and close() ends within its bound even with a batch stuck", async () => {
    const nowhere = open({ brokers: ["127.0.0.1:1"], retries: 0 });
    await sleep(600);
    expect(nowhere.healthy()).toBe(false);

    const bus = open({ closeTimeoutMs: 500 });
    const topic = uniqueName("stuck");
    await createTopic(bus, topic, 1);
    let entered!: () => void;
    const inHandler = new Promise<void>((r) => (entered = r));
    await bus.subscribe(topic, { group: uniqueName("g") }, async () => {
      entered();
      await new Promise(() => {});
    });
    await bus.publish(topic, [rec("k", 1)]);
    await inHandler;
    const started = Date.now();
    await bus.close();
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(bus.healthy()).toBe(false);
  });
});
