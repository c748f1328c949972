import type {
  BatchContext,
  BatchHandler,
  Bus,
  BusRecord,
  OutRecord,
  SubscribeOptions,
  Subscription,
} from "./bus.ts";

interface Waiter {
  resolve: () => void;
}

/** Records whose publisher wants to know when their bytes are free: how many group queues still hold each. */
const holders = new WeakMap<BusRecord, { left: number; release: () => void }>();

/** One queue is done with `record` (committed or dropped); the last one releases it. */
function done(record: BusRecord) {
  const h = holders.get(record);
  if (!h || --h.left > 0) return;
  holders.delete(record);
  h.release();
}

/** A bounded FIFO per (topic, group); publishers wait for room, consumers wait for records. */
class GroupQueue {
  readonly records: BusRecord[] = [];
  private spaceWaiters: Waiter[] = [];
  private dataWaiters: Waiter[] = [];
  /** Records taken but not yet committed, counted against capacity so a slow consumer still pushes back. */
  inFlight = 0;
  constructor(readonly capacity: number) {}

  get size() {
    return this.records.length + this.inFlight;
  }

  async put(record: BusRecord, closed: () => boolean) {
    while (this.size >= this.capacity && !closed()) {
      await new Promise<void>((resolve) => this.spaceWaiters.push({ resolve }));
    }
    this.records.push(record);
    this.wake(this.dataWaiters);
  }

  async take(max: number, stopped: () => boolean): Promise<BusRecord[]> {
    while (this.records.length === 0 && !stopped()) {
      await new Promise<void>((resolve) => this.dataWaiters.push({ resolve }));
    }
    const batch = this.records.splice(0, max);
    this.inFlight += batch.length;
    return batch;
  }

  commit(batch: BusRecord[]) {
    this.inFlight -= batch.length;
    for (const record of batch) done(record);
    this.wakeAll(this.spaceWaiters);
  }

  /** Puts an uncommitted batch back at the head, for redelivery. */
  requeue(batch: BusRecord[]) {
    this.inFlight -= batch.length;
    this.records.unshift(...batch);
    this.wake(this.dataWaiters);
  }

  wakeEveryone() {
    this.wakeAll(this.spaceWaiters);
    this.wakeAll(this.dataWaiters);
  }

  private wake(list: Waiter[]) {
    list.shift()?.resolve();
  }
  private wakeAll(list: Waiter[]) {
    for (const w of list.splice(0)) w.resolve();
  }
}

interface Topic {
  nextOffset: number;
  groups: Map<string, GroupQueue>;
  /** The newest records published before any group subscribed; the first group takes them over. */
  unclaimed: GroupQueue;
}

export interface MemoryBusOptions {
  capacity: number;
  /** Per-topic bounds where one size does not fit all. */
  topicCapacity?: Record<string, number>;
  /** Pause before a rejected batch is delivered again (grows with each attempt, capped at 20×). */
  retryDelayMs?: number;
  /** Told of every rejected delivery (logs, metrics); the batch is delivered again. */
  onHandlerError?: (error: Error, attempt: number) => void;
}

/** The embedded product's bus: same contract bytes and the same batch/commit shape as Kafka, in one process. */
export class MemoryBus implements Bus {
  private topics = new Map<string, Topic>();
  private loops = new Set<Promise<void>>();
  private closed = false;
  private idleWaiters: Waiter[] = [];

  constructor(private readonly options: MemoryBusOptions) {}

  private topic(name: string): Topic {
    let topic = this.topics.get(name);
    if (!topic) {
      topic = { nextOffset: 0, groups: new Map(), unclaimed: new GroupQueue(this.capacityOf(name)) };
      this.topics.set(name, topic);
    }
    return topic;
  }

  private capacityOf(topic: string): number {
    return this.options.topicCapacity?.[topic] ?? this.options.capacity;
  }

  async publish(topicName: string, records: OutRecord[]): Promise<void> {
    if (this.closed) throw new Error(`bus is closed; cannot publish to ${topicName}`);
    const topic = this.topic(topicName);
    for (const { key, value, release } of records) {
      const record: BusRecord = {
        topic: topicName,
        partition: 0,
        offset: String(topic.nextOffset++),
        timestamp: Date.now(),
        key,
        value,
      };
      if (release) holders.set(record, { left: Math.max(1, topic.groups.size), release });
      if (topic.groups.size === 0) {
        // Nobody consumes this topic yet. Like Kafka, retain rather than push back (a producer must not stall
        // on a topic no one reads), keeping the newest records up to the bound.
        topic.unclaimed.records.push(record);
        if (topic.unclaimed.records.length > topic.unclaimed.capacity) done(topic.unclaimed.records.shift()!);
        continue;
      }
      for (const queue of topic.groups.values()) await queue.put(record, () => this.closed);
    }
  }

  /** One partition per topic: a group has one member here, which owns partition 0 of each of its topics. */
  async subscribe(
    topics: string | readonly string[],
    options: SubscribeOptions,
    handler: BatchHandler,
  ): Promise<Subscription> {
    const names = typeof topics === "string" ? [topics] : [...topics];
    const partitions = names.map((topic) => ({ topic, partition: 0 }));
    await options.onAssign?.(partitions);
    let stopped = false;
    const isStopped = () => stopped || this.closed;
    const loops = names.map((name) => this.consume(name, options, handler, isStopped));
    return {
      stop: async () => {
        if (stopped) return;
        stopped = true;
        for (const name of names) this.topics.get(name)?.groups.get(options.group)?.wakeEveryone();
        await Promise.all(loops);
        await options.onRevoke?.(partitions);
      },
    };
  }

  private consume(
    topicName: string,
    options: SubscribeOptions,
    handler: BatchHandler,
    isStopped: () => boolean,
  ): Promise<void> {
    const topic = this.topic(topicName);
    let queue = topic.groups.get(options.group);
    if (!queue) {
      queue = topic.groups.size === 0 ? topic.unclaimed : new GroupQueue(this.capacityOf(topicName));
      topic.groups.set(options.group, queue);
    }
    const maxBatch = options.maxBatch ?? 16;
    const concurrency = Math.max(1, options.concurrency ?? 1);
    const q = queue;
    const loop = (async () => {
      const inFlight = new Set<Promise<void>>();
      while (!isStopped()) {
        while (inFlight.size >= concurrency) await Promise.race(inFlight);
        const batch = await q.take(maxBatch, isStopped);
        if (batch.length === 0) continue;
        const delivery: Promise<void> = this.deliver(q, batch, handler).then(() => {
          inFlight.delete(delivery);
          this.notifyIfIdle();
        });
        inFlight.add(delivery);
      }
      await Promise.all(inFlight);
    })();
    this.loops.add(loop);
    void loop.finally(() => this.loops.delete(loop));
    return loop;
  }

  /** At-least-once: a rejected batch is delivered again after a pause, until it succeeds or the bus closes. */
  private async deliver(queue: GroupQueue, batch: BusRecord[], handler: BatchHandler) {
    const context: BatchContext = { heartbeat: async () => {} };
    for (let attempt = 1; ; attempt++) {
      try {
        await handler(batch, context);
        queue.commit(batch);
        return;
      } catch (err) {
        if (this.closed) {
          queue.commit(batch);
          return;
        }
        this.options.onHandlerError?.(err as Error, attempt);
        const delay = (this.options.retryDelayMs ?? 50) * Math.min(attempt, 20);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  healthy(): boolean {
    return !this.closed;
  }

  private isIdle(): boolean {
    for (const topic of this.topics.values()) {
      for (const queue of topic.groups.values()) if (queue.size > 0) return false;
    }
    return true;
  }

  private notifyIfIdle() {
    if (this.isIdle()) for (const w of this.idleWaiters.splice(0)) w.resolve();
  }

  async drain(): Promise<void> {
    // Handlers publish downstream before committing, so "every group queue empty" means the pipeline is quiet.
    while (!this.isIdle()) await new Promise<void>((resolve) => this.idleWaiters.push({ resolve }));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const topic of this.topics.values()) {
      topic.unclaimed.wakeEveryone();
      for (const queue of topic.groups.values()) queue.wakeEveryone();
    }
    await Promise.allSettled([...this.loops]);
  }
}
