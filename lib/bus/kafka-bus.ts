import kafkajs, {
  type Admin,
  type Consumer,
  type EachBatchPayload,
  type Kafka as KafkaClient,
  type KafkaMessage,
  type LogEntry,
  type Message,
  type Producer,
  type SASLOptions,
} from "kafkajs";
import type {
  BatchContext,
  BatchHandler,
  Bus,
  BusRecord,
  OutRecord,
  SubscribeOptions,
  Subscription,
  TopicPartition,
} from "./bus.ts";
import { within } from "../util/within.ts";

/**
 * The scale-out bus over Apache Kafka (kafkajs). What it guarantees, exactly:
 *
 * - **Commit point**: a batch's offsets are committed only after the handler resolves (auto-commit is off), in one
 *   OffsetCommit for every partition in the batch. A member that dies before that commit has its records delivered
 *   again to whichever member owns the partition next (at-least-once).
 * - **Redelivery**: when the handler rejects, nothing of the batch is resolved; after a backoff (doubling, capped)
 *   the same records are fetched again from the last resolved offset of each partition and handed over again, in
 *   order. Nothing after a failed record is delivered before it, and nothing is skipped.
 * - **Batches** may span partitions: the partition batches of one fetch (kafkajs hands them over concurrently)
 *   are gathered into handler calls of up to `maxBatch` records, in offset order within each partition. One
 *   handler call runs at a time per subscription.
 * - **Rebalances** (kafkajs uses the eager protocol: a rebalance takes every partition away and hands out a new
 *   assignment): no new batch starts; the batch in flight finishes and is committed; `onRevoke` gets every partition
 *   the member owned; then the member rejoins, and `onAssign` gets its new assignment before the first batch of it.
 *   When the rebalance is noticed while batches are in flight (our heartbeat after each batch), the rejoin waits
 *   for `onRevoke` to finish. When it is noticed by kafkajs on an idle member, kafkajs offers no hook that can delay
 *   the rejoin: `onRevoke` runs as the member rejoins (everything it handled is already committed by then).
 * - **Producer**: idempotent, acks from all in-sync replicas, records keyed so one key stays on one partition (the
 *   Java client's murmur2 partitioner), one produce request in flight at a time so retries can never reorder or
 *   duplicate; concurrent publishes are coalesced into that request. A publish waits through a broker outage.
 */
// kafkajs is CommonJS and Node's static analysis misses some of its named exports.
const { CompressionTypes, ConfigResourceTypes, Kafka, Partitioners, logLevel } = kafkajs;

export interface KafkaBusOptions {
  brokers: string[];
  clientId?: string;
  ssl?: boolean;
  sasl?: { mechanism: "plain" | "scram-sha-256" | "scram-sha-512"; username: string; password: string };
  /** gzip is the only codec kafkajs has without native modules. */
  compression?: "none" | "gzip";
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  /** Fetch long-poll: also how soon an idle member notices a rebalance. */
  maxWaitMs?: number;
  fetchMaxBytes?: number;
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Attempts at a broker request before giving up (a consumer then restarts itself); CLI commands use few. */
  retries?: number;
  /** Largest record batch each topic accepts (its max.message.bytes); publishes are split to fit. */
  maxMessageBytes?: Record<string, number>;
  /** First pause before a rejected batch is delivered again; doubles per consecutive failure up to the cap. */
  retryDelayMs?: number;
  retryMaxDelayMs?: number;
  /** How often reachability is probed for `healthy()`. */
  healthCheckMs?: number;
  /** Bound on `Subscription.stop()` and on `close()`, the batch in flight included; what is not done is given up. */
  closeTimeoutMs?: number;
  /** Told of every rejected delivery (logs, metrics); the batch is delivered again. */
  onHandlerError?: (error: Error, attempt: number) => void;
  /** kafkajs' own log lines and the bus's; by default errors go to stderr, each distinct one at most every 30 s. */
  log?: (entry: KafkaLogEntry) => void;
}

export interface KafkaLogEntry {
  level: "error" | "warn" | "info" | "debug";
  namespace: string;
  message: string;
  error?: string;
}

export interface TopicSettings {
  name: string;
  partitions: number;
  retentionMs: number;
  maxMessageBytes: number;
  replicationFactor?: number;
}

export interface LiveTopic {
  name: string;
  partitions: number;
  replicationFactor: number;
  retentionMs?: number;
  maxMessageBytes?: number;
}

const DEFAULT_MAX_MESSAGE_BYTES = 1_000_000;
/** Room left in a record batch for record and batch headers. */
const BATCH_OVERHEAD = 0.9;
const PER_RECORD_OVERHEAD = 64;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface KafkaError extends Error {
  type?: string;
  retriable?: boolean;
}

/** Errors that mean this member's place in its group is gone or changing: rejoin, do not retry. */
const isMembershipError = (e: unknown) =>
  ["REBALANCE_IN_PROGRESS", "ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID", "NOT_COORDINATOR_FOR_GROUP"].includes(
    (e as KafkaError).type ?? "",
  );

function defaultLog(): (entry: KafkaLogEntry) => void {
  const lastSeen = new Map<string, number>();
  return (entry) => {
    if (entry.level !== "error") return;
    const line = `kafka: ${entry.namespace ? `[${entry.namespace}] ` : ""}${entry.message}${entry.error ? `: ${entry.error}` : ""}`;
    const now = Date.now();
    if ((lastSeen.get(line) ?? 0) > now - 30_000) return;
    lastSeen.set(line, now);
    process.stderr.write(`${line}\n`);
  };
}

export class KafkaBus implements Bus {
  private readonly kafka: KafkaClient;
  private readonly producer: Producer;
  private producerConnected: Promise<void> | undefined;
  private adminClient: Promise<Admin> | undefined;
  private probeAdmin: Admin | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private probing: Promise<void> | undefined;
  private reachable = false;
  private closed = false;
  private readonly subscriptions = new Set<KafkaSubscription>();
  private readonly knownTopics = new Map<string, Promise<void>>();
  private readonly sendQueue: SendItem[] = [];
  private sending: Promise<void> | undefined;
  private readonly log: (entry: KafkaLogEntry) => void;
  readonly options: Required<
    Omit<KafkaBusOptions, "sasl" | "onHandlerError" | "log" | "maxMessageBytes" | "clientId">
  > &
    KafkaBusOptions;

  constructor(options: KafkaBusOptions) {
    this.options = {
      ssl: false,
      compression: "none",
      sessionTimeoutMs: 30_000,
      heartbeatIntervalMs: 3_000,
      maxWaitMs: 500,
      fetchMaxBytes: 32 * 1024 * 1024,
      connectionTimeoutMs: 3_000,
      requestTimeoutMs: 30_000,
      retries: 20,
      retryDelayMs: 100,
      retryMaxDelayMs: 5_000,
      healthCheckMs: 2_000,
      closeTimeoutMs: 10_000,
      ...options,
    };
    this.log = options.log ?? defaultLog();
    const o = this.options;
    this.kafka = new Kafka({
      clientId: o.clientId ?? "vigil",
      brokers: o.brokers,
      ssl: o.ssl,
      // kafkajs types each mechanism separately; the shape is the same for all three.
      sasl: o.sasl as SASLOptions | undefined,
      connectionTimeout: o.connectionTimeoutMs,
      requestTimeout: o.requestTimeoutMs,
      // Backoff capped at 2 s (the Java client caps at 1 s): back within moments of the broker. 20 attempts ride out
      // a broker restart (~35 s) before a consumer restarts itself (restartOnFailure).
      retry: { initialRetryTime: 200, maxRetryTime: 2_000, retries: o.retries, factor: 0.2, multiplier: 2 },
      logLevel: logLevel.INFO,
      logCreator: () => (entry: LogEntry) => this.kafkaLog(entry),
    });
    this.producer = this.kafka.producer({
      idempotent: true,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
      // Idempotence needs unbounded retries (kafkajs warns otherwise); a publish waits out a broker outage.
      retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 100, maxRetryTime: 1_000 },
    });
    this.startProbing();
  }

  private kafkaLog(entry: LogEntry) {
    const level = (
      { [logLevel.ERROR]: "error", [logLevel.WARN]: "warn", [logLevel.INFO]: "info" } as Record<
        number,
        string
      >
    )[entry.level];
    const { message, error } = entry.log as { message: string; error?: string };
    this.log({
      level: (level ?? "debug") as KafkaLogEntry["level"],
      namespace: entry.namespace,
      message,
      ...(error ? { error: String(error) } : {}),
    });
  }

  /** Connects the producer (waiting for the broker) and probes it; optional: publish and subscribe connect lazily. */
  async connect(): Promise<void> {
    await this.ensureProducer();
    await this.probe();
  }

  private ensureProducer(): Promise<void> {
    this.producerConnected ??= (async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          await this.producer.connect();
          return;
        } catch (err) {
          if (this.closed) throw err;
          this.log({
            level: "warn",
            namespace: "bus",
            message: "producer cannot connect yet",
            error: String(err),
          });
          await sleep(Math.min(250 * attempt, 3_000));
        }
      }
    })();
    return this.producerConnected;
  }

  private admin(): Promise<Admin> {
    this.adminClient ??= (async () => {
      const admin = this.kafka.admin();
      await admin.connect();
      return admin;
    })().catch((err) => {
      this.adminClient = undefined;
      throw err;
    });
    return this.adminClient;
  }

  private startProbing() {
    // Fails fast: readiness should flip within a probe or two of the broker going away.
    this.probeAdmin = this.kafka.admin({ retry: { retries: 0 } });
    const tick = () => void this.probe();
    this.probeTimer = setInterval(tick, this.options.healthCheckMs);
    this.probeTimer.unref();
    tick();
  }

  /** One probe at a time; one that hangs past twice the connection timeout counts as unreachable meanwhile. */
  private probe(): Promise<void> {
    const admin = this.probeAdmin;
    if (this.closed || !admin) return Promise.resolve();
    this.probing ??= (async () => {
      const slow = setTimeout(() => (this.reachable = false), this.options.connectionTimeoutMs * 2);
      try {
        await admin.describeCluster();
        this.reachable = true;
      } catch {
        this.reachable = false;
      } finally {
        clearTimeout(slow);
        this.probing = undefined;
      }
    })();
    return this.probing;
  }

  healthy(): boolean {
    if (this.closed || !this.reachable) return false;
    for (const s of this.subscriptions) if (s.failed) return false;
    return true;
  }

  async publish(topic: string, records: OutRecord[]): Promise<void> {
    if (this.closed) throw new Error(`bus is closed; cannot publish to ${topic}`);
    if (records.length === 0) return;
    await this.checkTopic(topic);
    const limit = (this.options.maxMessageBytes?.[topic] ?? DEFAULT_MAX_MESSAGE_BYTES) * BATCH_OVERHEAD;
    const sends: Promise<void>[] = [];
    let messages: Message[] = [];
    let bytes = 0;
    const flush = () => {
      if (messages.length === 0) return;
      const item = { topic, messages, bytes, limit } as SendItem;
      sends.push(new Promise<void>((resolve, reject) => Object.assign(item, { resolve, reject })));
      this.sendQueue.push(item);
      messages = [];
      bytes = 0;
    };
    for (const { key, value } of records) {
      const size = value.byteLength + key.length + PER_RECORD_OVERHEAD;
      if (bytes > 0 && bytes + size > limit) flush();
      messages.push({ key, value: Buffer.from(value.buffer, value.byteOffset, value.byteLength) });
      bytes += size;
    }
    flush();
    this.pump();
    try {
      await Promise.all(sends);
    } finally {
      // kafkajs has encoded the values into its request (or given up on them) by now.
      for (const r of records) r.release?.();
    }
  }

  /**
   * A topic nobody created would otherwise make publish wait forever (the idempotent producer retries without
   * end); say so once instead. An unreachable broker is not an answer: the producer then waits for it.
   */
  private checkTopic(topic: string): Promise<void> {
    let known = this.knownTopics.get(topic);
    if (!known) {
      known = (async () => {
        try {
          const admin = await this.admin();
          await admin.fetchTopicMetadata({ topics: [topic] });
        } catch (err) {
          if ((err as KafkaError).type === "UNKNOWN_TOPIC_OR_PARTITION") {
            this.knownTopics.delete(topic);
            throw new Error(
              `Kafka topic ${topic} does not exist (create the topics with \`vigil topics create\`)`,
            );
          }
        }
      })();
      this.knownTopics.set(topic, known);
    }
    return known;
  }

  /** One produce request in flight at a time, so a retried request can never land behind a later one. */
  private pump() {
    this.sending ??= (async () => {
      try {
        while (this.sendQueue.length > 0) {
          const items = this.takeSendable();
          try {
            await this.ensureProducer();
            await this.send(items);
            for (const i of items) i.resolve();
          } catch (err) {
            if (items.length === 1) {
              items[0]!.reject(err as Error);
              continue;
            }
            // One publish's failure (a record too large, say) must not fail the others it was coalesced with.
            for (const i of items) await this.send([i]).then(i.resolve, i.reject);
          }
        }
      } finally {
        this.sending = undefined;
        if (this.sendQueue.length > 0 && !this.closed) this.pump();
      }
    })();
  }

  /** Coalesces queued publishes in order, keeping each topic's share within its record-batch limit. */
  private takeSendable(): SendItem[] {
    const taken: SendItem[] = [];
    const perTopic = new Map<string, number>();
    let total = 0;
    while (this.sendQueue.length > 0) {
      const next = this.sendQueue[0]!;
      const used = perTopic.get(next.topic) ?? 0;
      if (taken.length > 0 && (used + next.bytes > next.limit || total + next.bytes > 16 * 1024 * 1024))
        break;
      taken.push(this.sendQueue.shift()!);
      perTopic.set(next.topic, used + next.bytes);
      total += next.bytes;
    }
    return taken;
  }

  private async send(items: SendItem[]) {
    await this.producer.sendBatch({
      acks: -1,
      timeout: this.options.requestTimeoutMs,
      compression: this.options.compression === "gzip" ? CompressionTypes.GZIP : CompressionTypes.None,
      topicMessages: items.map((i) => ({ topic: i.topic, messages: i.messages })),
    });
  }

  async subscribe(
    topics: string | readonly string[],
    options: SubscribeOptions,
    handler: BatchHandler,
  ): Promise<Subscription> {
    if (this.closed) throw new Error("bus is closed; cannot subscribe");
    const names = typeof topics === "string" ? [topics] : [...topics];
    const subscription = new KafkaSubscription(this, this.kafka, names, options, handler, this.log);
    this.subscriptions.add(subscription);
    subscription.onStopped = () => this.subscriptions.delete(subscription);
    try {
      await subscription.start();
    } catch (err) {
      await subscription.stop().catch(() => {});
      throw err;
    }
    return subscription;
  }

  /** Bounded (10 s): a metrics scrape must not hang on a broker that is away. */
  lag(group: string, topic: string): Promise<{ partition: number; lag: number }[]> {
    return within(this.lagNow(group, topic), 10_000, `the lag of ${group} on ${topic}`);
  }

  private async lagNow(group: string, topic: string): Promise<{ partition: number; lag: number }[]> {
    const admin = await this.admin();
    const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    const ends = await admin.fetchTopicOffsets(topic);
    return ends
      .map(({ partition, high, low }) => {
        const offset = committed?.partitions.find((p) => p.partition === partition)?.offset;
        // No commit yet: the group starts at the beginning of what the partition still holds.
        const from = offset !== undefined && BigInt(offset) >= 0n ? BigInt(offset) : BigInt(low);
        const lag = BigInt(high) - from;
        return { partition, lag: Number(lag > 0n ? lag : 0n) };
      })
      .sort((a, b) => a.partition - b.partition);
  }

  /** Creates the topics that are missing (idempotent); existing ones are left as they are. */
  async ensureTopics(topics: TopicSettings[]): Promise<{ created: string[]; existing: string[] }> {
    const admin = await this.admin();
    const present = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !present.has(t.name));
    if (missing.length > 0) {
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((t) => ({
          topic: t.name,
          numPartitions: t.partitions,
          replicationFactor: t.replicationFactor ?? -1,
          configEntries: [
            { name: "retention.ms", value: String(t.retentionMs) },
            { name: "max.message.bytes", value: String(t.maxMessageBytes) },
          ],
        })),
      });
    }
    for (const t of missing) this.knownTopics.delete(t.name);
    return {
      created: missing.map((t) => t.name),
      existing: topics.filter((t) => present.has(t.name)).map((t) => t.name),
    };
  }

  /** What the broker says about these topics; absent ones are left out. */
  async describeTopics(names: string[]): Promise<LiveTopic[]> {
    const admin = await this.admin();
    const present = new Set(await admin.listTopics());
    const wanted = names.filter((n) => present.has(n));
    if (wanted.length === 0) return [];
    const { topics } = await admin.fetchTopicMetadata({ topics: wanted });
    const { resources } = await admin.describeConfigs({
      includeSynonyms: false,
      resources: wanted.map((name) => ({
        type: ConfigResourceTypes.TOPIC,
        name,
        configNames: ["retention.ms", "max.message.bytes"],
      })),
    });
    return topics.map((t) => {
      const config = resources.find((r) => r.resourceName === t.name)?.configEntries ?? [];
      const value = (key: string) => {
        const v = config.find((c) => c.configName === key)?.configValue;
        return v === undefined || v === null ? undefined : Number(v);
      };
      return {
        name: t.name,
        partitions: t.partitions.length,
        replicationFactor: t.partitions[0]?.replicas.length ?? 0,
        retentionMs: value("retention.ms"),
        maxMessageBytes: value("max.message.bytes"),
      };
    });
  }

  /**
   * Stops every subscription (the batch in flight finishes and commits), lets queued publishes land, and
   * disconnects, all within `closeTimeoutMs` (plus a moment to disconnect): what is not done by then is given up.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.probeTimer);
    const deadline = Date.now() + this.options.closeTimeoutMs;
    const left = () => Math.max(500, deadline - Date.now());
    await Promise.allSettled([...this.subscriptions].map((s) => s.stop(deadline)));
    if (this.sending) await within(this.sending, left(), "pending publishes").catch(() => {});
    for (const item of this.sendQueue.splice(0))
      item.reject(new Error("bus closed before the record was sent"));
    const disconnects: Promise<unknown>[] = [];
    if (this.producerConnected) disconnects.push(this.producer.disconnect());
    if (this.adminClient) disconnects.push(this.adminClient.then((a) => a.disconnect()));
    if (this.probeAdmin) disconnects.push(this.probeAdmin.disconnect());
    await within(Promise.allSettled(disconnects), left(), "disconnecting from Kafka").catch((err) =>
      this.log({ level: "warn", namespace: "bus", message: String(err) }),
    );
  }
}

interface SendItem {
  topic: string;
  messages: Message[];
  bytes: number;
  limit: number;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** A partition's not-yet-handled records, waiting to be gathered into the next handler call. */
interface Offer {
  records: BusRecord[];
  payload: EachBatchPayload;
  resolve: (taken: number) => void;
  reject: (error: unknown) => void;
}

/** The offer was not handled and will not be: return and let kafkajs fetch it again (or another member). */
class Abandoned extends Error {}
/** The handler rejected the batch this offer was part of. */
class HandlerFailed extends Error {}

function toRecord(topic: string, partition: number, m: KafkaMessage): BusRecord {
  return {
    topic,
    partition,
    offset: m.offset,
    timestamp: Number(m.timestamp),
    key: m.key ? m.key.toString() : "",
    // A copy: kafkajs hands out views into the whole fetch response, which a kept record would pin in memory.
    value: m.value ? new Uint8Array(m.value) : new Uint8Array(0),
  };
}

/** One consumer-group member: kafkajs' partition batches in, gathered handler calls out, commit after each. */
class KafkaSubscription implements Subscription {
  private readonly consumer: Consumer;
  private owned: TopicPartition[] = [];
  /** No handler call may start: a rebalance, a stop, or no assignment yet. */
  private blocked = true;
  private rebalance: Error | undefined;
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private releaseParked!: () => void;
  private readonly parked = new Promise<void>((r) => (this.releaseParked = r));
  /** onRevoke / onAssign run one after another, in the order the group told us. */
  private lifecycle: Promise<void> = Promise.resolve();
  private readonly pending: Offer[] = [];
  private flushing: Promise<void> | undefined;
  private flushScheduled = false;
  private failures = 0;
  /** kafkajs gave up restarting this consumer. */
  failed = false;
  onStopped: (() => void) | undefined;

  constructor(
    private readonly bus: KafkaBus,
    kafka: KafkaClient,
    private readonly topics: string[],
    private readonly options: SubscribeOptions,
    private readonly handler: BatchHandler,
    private readonly log: (entry: KafkaLogEntry) => void,
  ) {
    const o = bus.options;
    this.consumer = kafka.consumer({
      groupId: options.group,
      sessionTimeout: o.sessionTimeoutMs,
      heartbeatInterval: o.heartbeatIntervalMs,
      maxWaitTimeInMs: o.maxWaitMs,
      maxBytes: o.fetchMaxBytes,
      maxBytesPerPartition: Math.max(1024 * 1024, Math.min(o.fetchMaxBytes, 8 * 1024 * 1024)),
      allowAutoTopicCreation: false,
      retry: {
        initialRetryTime: 200,
        maxRetryTime: 2_000,
        retries: o.retries,
        // A consumer that ran out of retries (a long broker outage) starts over and rejoins, until we stop it.
        restartOnFailure: async () => !this.stopping,
      },
    });
    const { GROUP_JOIN, REBALANCING, CRASH } = this.consumer.events;
    this.consumer.on(GROUP_JOIN, ({ payload }) => this.joined(payload.memberAssignment));
    // Only reached when kafkajs noticed the rebalance itself (an idle member): it is rejoining already.
    this.consumer.on(REBALANCING, () => void this.revoke());
    this.consumer.on(CRASH, ({ payload }) => {
      this.log({
        level: payload.restart ? "warn" : "error",
        namespace: "bus",
        message: `consumer of ${topics.join(",")} (group ${options.group}) crashed${payload.restart ? "; restarting" : ""}`,
        error: String(payload.error),
      });
      if (!payload.restart && !this.stopping) this.failed = true;
      void this.revoke();
    });
  }

  async start(): Promise<void> {
    await this.consumer.connect();
    try {
      await this.consumer.subscribe({ topics: this.topics, fromBeginning: true });
    } catch (err) {
      if ((err as KafkaError).type === "UNKNOWN_TOPIC_OR_PARTITION") {
        throw new Error(
          `Kafka topic(s) ${this.topics.join(", ")} missing (create the topics with \`vigil topics create\`)`,
        );
      }
      throw err;
    }
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      // Every partition batch of a fetch at once, so they can be gathered into full handler calls.
      partitionsConsumedConcurrently: 64,
      eachBatch: (payload) => this.eachBatch(payload),
    });
    await this.lifecycle;
  }

  private chain(step: () => Promise<void>): Promise<void> {
    this.lifecycle = this.lifecycle
      .then(step)
      .catch((err) =>
        this.log({ level: "error", namespace: "bus", message: "partition hook failed", error: String(err) }),
      );
    return this.lifecycle;
  }

  private joined(assignment: Record<string, number[]>) {
    const next = Object.entries(assignment).flatMap(([topic, partitions]) =>
      partitions.map((partition) => ({ topic, partition })),
    );
    void this.chain(async () => {
      // A rejoin kafkajs did without a REBALANCING event (a restart after a crash, stale metadata).
      await this.revokeNow();
      if (this.stopping) return;
      this.owned = next;
      this.rebalance = undefined;
      this.blocked = false;
      if (next.length > 0) await this.options.onAssign?.(next);
    });
  }

  private revoke(): Promise<void> {
    return this.chain(() => this.revokeNow());
  }

  private async revokeNow(): Promise<void> {
    this.blocked = true;
    this.abandonPending();
    await this.flushing;
    const lost = this.owned;
    this.owned = [];
    if (lost.length > 0) await this.options.onRevoke?.(lost);
  }

  private async eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    await this.lifecycle;
    let records = batch.messages.map((m) => toRecord(batch.topic, batch.partition, m));
    while (records.length > 0 && !this.blocked && payload.isRunning() && !payload.isStale()) {
      try {
        const taken = await this.offer(records, payload);
        records = records.slice(taken);
      } catch (err) {
        if (err instanceof HandlerFailed) await this.backoff(payload);
        else if (!(err instanceof Abandoned) && !this.rebalance) throw err;
        // Unresolved: kafkajs fetches this partition again from its last resolved offset.
        break;
      }
    }
    if (this.rebalance) {
      // Throwing it makes kafkajs rejoin (after every other partition batch of this fetch has returned).
      await this.revoke();
      throw this.rebalance;
    }
    // Hold kafkajs here until the consumer is stopped, so it does not fetch what nobody will handle.
    if (this.stopping) await this.parked;
  }

  private offer(records: BusRecord[], payload: EachBatchPayload): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.pending.push({ records, payload, resolve, reject });
      if (this.flushScheduled || this.flushing) return;
      this.flushScheduled = true;
      // After the other partition batches of this fetch have been offered too (kafkajs starts them together).
      setImmediate(() => {
        this.flushScheduled = false;
        this.flushing ??= this.flush().finally(() => (this.flushing = undefined));
      });
    });
  }

  private abandonPending() {
    for (const offer of this.pending.splice(0)) offer.reject(new Abandoned());
  }

  private async flush(): Promise<void> {
    const maxBatch = this.options.maxBatch ?? 16;
    while (this.pending.length > 0 && !this.blocked) {
      const parts: { offer: Offer; count: number }[] = [];
      let room = maxBatch;
      while (room > 0 && this.pending.length > 0) {
        const offer = this.pending.shift()!;
        const count = Math.min(room, offer.records.length);
        parts.push({ offer, count });
        room -= count;
      }
      const records = parts.flatMap(({ offer, count }) => offer.records.slice(0, count));
      const payload = parts[0]!.offer.payload;
      const context: BatchContext = { heartbeat: () => this.heartbeat(payload) };
      try {
        await this.handler(records, context);
      } catch (err) {
        this.failures++;
        if (this.bus.options.onHandlerError) this.bus.options.onHandlerError(err as Error, this.failures);
        else {
          this.log({
            level: "error",
            namespace: "bus",
            message: `handler failed on ${records.length} record(s) of ${this.topics.join(",")}; delivering them again`,
            error: (err as Error).message,
          });
        }
        for (const { offer } of parts) offer.reject(new HandlerFailed((err as Error).message));
        continue;
      }
      this.failures = 0;
      for (const { offer, count } of parts) offer.payload.resolveOffset(offer.records[count - 1]!.offset);
      try {
        await this.commit(payload);
      } catch (err) {
        for (const { offer } of parts) offer.reject(err);
        continue;
      }
      for (const { offer, count } of parts) offer.resolve(count);
      await this.heartbeat(payload);
    }
    this.abandonPending();
  }

  /** Every partition resolved so far, in one request; retried through a short outage. */
  private async commit(payload: EachBatchPayload): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await payload.commitOffsetsIfNecessary(payload.uncommittedOffsets());
        return;
      } catch (err) {
        if (isMembershipError(err)) {
          this.noteRebalance(err as Error);
          throw err;
        }
        if (attempt >= 5 || !payload.isRunning()) throw err;
        await sleep(200 * attempt);
      }
    }
  }

  /**
   * Heartbeats (kafkajs sends one only when the interval is due) and learns of a rebalance: the batch in flight
   * still completes and commits (the group accepts commits from the old generation until it has rejoined).
   */
  private async heartbeat(payload: EachBatchPayload): Promise<void> {
    try {
      await payload.heartbeat();
    } catch (err) {
      if (isMembershipError(err)) this.noteRebalance(err as Error);
    }
  }

  private noteRebalance(err: Error) {
    this.rebalance ??= err;
    this.blocked = true;
  }

  private async backoff(payload: EachBatchPayload): Promise<void> {
    const { retryDelayMs, retryMaxDelayMs } = this.bus.options;
    const delay = Math.min(retryDelayMs * 2 ** Math.max(0, this.failures - 1), retryMaxDelayMs);
    const until = Date.now() + delay;
    while (Date.now() < until && !this.blocked && !this.stopping && payload.isRunning()) {
      await sleep(Math.min(100, until - Date.now()));
      await this.heartbeat(payload);
    }
  }

  /**
   * Stops fetching, lets the batch in flight finish and commit, calls onRevoke, and leaves the group, by the
   * deadline (`closeTimeoutMs` from now by default); past it the member is abandoned, and the group moves its
   * partitions when its session expires.
   */
  stop(deadline = Date.now() + this.bus.options.closeTimeoutMs): Promise<void> {
    this.stopped ??= (async () => {
      this.stopping = true;
      // Leaving the group needs a moment of the bound too.
      const leave = Math.min(1_000, this.bus.options.closeTimeoutMs / 4);
      try {
        await within(
          this.revoke(),
          Math.max(0, deadline - Date.now() - leave),
          "finishing the batch in flight",
        );
      } catch (err) {
        this.log({ level: "warn", namespace: "bus", message: String(err) });
      }
      // disconnect() marks the consumer stopped before it waits for it, so the parked batches may return.
      const disconnected = this.consumer.disconnect();
      this.releaseParked();
      await within(disconnected, Math.max(leave, deadline - Date.now()), "leaving the consumer group").catch(
        (err) => this.log({ level: "warn", namespace: "bus", message: String(err) }),
      );
      this.onStopped?.();
    })();
    return this.stopped;
  }
}
