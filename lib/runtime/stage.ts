import type { BusRecord, OutRecord, TopicPartition } from "../bus/index.ts";
import { DeadLetterContract, Topics, type TopicName } from "../contracts/index.ts";

export interface Emit {
  topic: TopicName;
  key: string;
  value: Uint8Array;
  /** See OutRecord.release: the bus calls it once the value's bytes may be reused. */
  release?: () => void;
}

/** Where a batch's messages came from: `records[i]` carried `batch[i]`. */
export interface BatchInfo {
  records: BusRecord[];
}

/**
 * A pipeline stage: pure logic over a batch of decoded input messages, returning encoded outputs. The runner
 * (lib/runtime/runner.ts) wires it to a bus, in one process as in a service; the stage never sees the bus.
 */
export interface Stage<M> {
  readonly name: string;
  readonly input: { topic: TopicName; contract: { decode(bytes: Uint8Array): M } };
  handle(batch: M[], info: BatchInfo): Promise<Emit[]>;
  /** Outputs held back until the input ends (open tracks, say): the end of a file run. */
  flush?(): Promise<Emit[]>;
  /** Called after a batch's outputs are published and before its offsets are committed: persist state here. */
  checkpoint?(): Promise<void>;
  /** The stage now owns these input partitions: restore the state kept for them. */
  assigned?(partitions: TopicPartition[]): Promise<void>;
  /** The stage is losing these partitions: the last batch is committed; save and drop their state. */
  revoked?(partitions: TopicPartition[]): Promise<void>;
}

export function deadLetter(sourceTopic: string, record: OutRecord, reason: string): Emit {
  return {
    topic: Topics.dlq,
    key: sourceTopic,
    value: DeadLetterContract.encode({
      sourceTopic,
      key: record.key,
      reason,
      ts: Date.now(),
      original: record.value,
    }),
  };
}
