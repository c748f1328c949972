import type { Bus, BusRecord } from "../bus/index.ts";
import { ContractError, DeadLetterContract, Topics, type TopicName } from "../contracts/index.ts";

export interface Emit {
  topic: TopicName;
  key: string;
  value: Uint8Array;
}

/**
 * A pipeline stage: pure logic over a batch of decoded input messages, returning encoded outputs. The embedded
 * runner and each service's main.ts wire the same object to a bus; the stage never sees the bus.
 */
export interface Stage<M> {
  readonly name: string;
  readonly input: { topic: TopicName; contract: { decode(bytes: Uint8Array): M } };
  handle(batch: M[]): Promise<Emit[]>;
  /** Outputs held back until the input ends (open tracks, say); called on shutdown. */
  flush?(): Promise<Emit[]>;
}

export interface StageRunOptions {
  group?: string;
  maxBatch?: number;
  onError?: (stage: string, error: Error) => void;
}

export function deadLetter(sourceTopic: string, record: BusRecord, reason: string): Emit {
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

/**
 * Subscribes a stage to its input topic. Undecodable records go to the dead-letter topic with the reason and
 * the original bytes; the rest are handled as one batch, outputs published, then the batch is committed.
 */
export async function runStage<M>(bus: Bus, stage: Stage<M>, options: StageRunOptions = {}) {
  return bus.subscribe(
    stage.input.topic,
    { group: options.group ?? stage.name, maxBatch: options.maxBatch ?? 16 },
    async (records) => {
      const messages: M[] = [];
      const dead: Emit[] = [];
      for (const record of records) {
        try {
          messages.push(stage.input.contract.decode(record.value));
        } catch (err) {
          if (!(err instanceof ContractError)) throw err;
          dead.push(deadLetter(stage.input.topic, record, err.message));
        }
      }
      const outputs = messages.length > 0 ? await stage.handle(messages) : [];
      for (const out of [...dead, ...outputs])
        await bus.publish(out.topic, [{ key: out.key, value: out.value }]);
    },
  );
}
