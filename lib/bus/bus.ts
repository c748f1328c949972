/** One record on a topic; values are always encoded contract bytes, in memory as on Kafka. */
export interface BusRecord {
  key: string;
  value: Uint8Array;
}

export interface SubscribeOptions {
  /** Consumer group: each group sees every record once; members of one group share them. */
  group: string;
  maxBatch?: number;
}

/**
 * Called with a batch of records; when it resolves the batch is committed. A rejection redelivers the batch
 * (at-least-once), so handlers must be idempotent.
 */
export type BatchHandler = (records: BusRecord[], topic: string) => Promise<void>;

export interface Subscription {
  /** Stops after the batch in flight; resolves when it has been committed or abandoned. */
  stop(): Promise<void>;
}

export interface Bus {
  /** Resolves once the records are accepted; waits while a bounded queue is full (backpressure). */
  publish(topic: string, records: BusRecord[]): Promise<void>;
  subscribe(topic: string, options: SubscribeOptions, handler: BatchHandler): Promise<Subscription>;
  /** Resolves when every record published so far has been handled by every group (embedded runner use). */
  drain(): Promise<void>;
  close(): Promise<void>;
}
