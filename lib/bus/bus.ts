/**
 * The bus, shaped like Kafka rather than like a queue: records sit at an offset of a partition of a topic, a
 * consumer group's members share a topic's partitions, and a member hears which partitions it gains and loses.
 * The in-memory bus (one process) and the Kafka bus (scale-out) both implement it; stages never see it.
 */

/** What a producer sends: values are always encoded contract bytes, in memory as on Kafka. */
export interface OutRecord {
  /** Partition key: records with one key stay in order on one partition (cameras, in Vigil). */
  key: string;
  value: Uint8Array;
  /**
   * Called once the bus needs `value`'s bytes no more (every consumer group committed the record, it was dropped,
   * or it was sent to the broker), so its memory can be reused: pooled frame slots. At most once.
   */
  release?: () => void;
}

/** A record as a consumer receives it: where it sits on the log, and when it was produced. */
export interface BusRecord extends OutRecord {
  topic: string;
  partition: number;
  /** Kafka offsets are 64-bit; kept as decimal strings so they survive JSON and never lose precision. */
  offset: string;
  /** When the producer sent it (ms since the epoch): consumers judge live frames' staleness by it. */
  timestamp: number;
}

export interface TopicPartition {
  topic: string;
  partition: number;
}

export interface SubscribeOptions {
  /** Consumer group: each group sees every record; members of one group share the partitions. */
  group: string;
  /** Most records handed to the handler at once (a batch may span partitions). */
  maxBatch?: number;
  /**
   * Batches handed to the handler before the first of them resolves (default 1), so a stage whose work runs
   * in worker threads keeps each of them busy. Records are still committed only after their own batch resolves.
   * The Kafka bus hands over one batch at a time whatever this says (offsets commit in order per partition).
   */
  concurrency?: number;
  /** The member now owns these partitions: load state kept for their keys. */
  onAssign?: (partitions: TopicPartition[]) => Promise<void> | void;
  /**
   * The member is about to lose these partitions (rebalance, shutdown): the batch in flight has been handled
   * and committed; save or hand over per-key state now, before another member takes them.
   */
  onRevoke?: (partitions: TopicPartition[]) => Promise<void> | void;
}

export interface BatchContext {
  /** Keeps the member alive in its group during a long batch (Kafka's session heartbeat). */
  heartbeat(): Promise<void>;
}

/**
 * Called with a batch of records (from one or several partitions, in order within each). When it resolves, the
 * batch's offsets are committed; when it rejects, the batch is delivered again (at-least-once), so handlers
 * must be idempotent and must not throw for a record that can never succeed (dead-letter it instead).
 */
export type BatchHandler = (records: BusRecord[], context: BatchContext) => Promise<void>;

export interface Subscription {
  /** Stops fetching, lets the batch in flight finish and commit, revokes the partitions, then resolves. */
  stop(): Promise<void>;
}

export interface Bus {
  /** Resolves once the broker has the records (acks from all in-sync replicas, on Kafka). */
  publish(topic: string, records: OutRecord[]): Promise<void>;
  subscribe(
    topics: string | readonly string[],
    options: SubscribeOptions,
    handler: BatchHandler,
  ): Promise<Subscription>;
  /** True while the bus can reach its broker (readiness). */
  healthy(): boolean;
  /** How far a group is behind the end of each partition of a topic (autoscaling, metrics). */
  lag?(group: string, topic: string): Promise<{ partition: number; lag: number }[]>;
  close(): Promise<void>;
}

/** `topic:partition`, the key of per-partition maps. */
export const partitionKey = (p: TopicPartition) => `${p.topic}:${p.partition}`;
