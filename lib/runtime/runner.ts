import type { Bus, BusRecord, OutRecord, Subscription } from "../bus/index.ts";
import { ContractError, type TopicName } from "../contracts/index.ts";
import { isTransient } from "./errors.ts";
import { deadLetter, type Emit, type Stage } from "./stage.ts";

export interface RunnerOptions {
  /** Consumer group; defaults to the stage's name, so a stage's replicas share its input. */
  group?: string;
  maxBatch?: number;
  /**
   * Records older than this when they arrive (by their produce time) are dropped and counted: a live frame
   * that waited this long is worth less than the next one. Kafka producers never wait for slow consumers, so
   * this is where live backpressure happens.
   */
  maxAgeMs?: number;
  /**
   * Batches handled at once (the bus's `concurrency`): a stage whose work runs in N worker threads gives N, so
   * each worker has a batch while the main thread routes the others. Outputs are still published in the order
   * the batches arrived. Stages with per-batch state to checkpoint keep 1.
   */
  concurrency?: number;
  /** Which messages can go stale (live frames do, a file's frames wait their turn); default: all. */
  perishable?: (message: never) => boolean;
  /** Attempts at a batch before its records are tried one by one and the failing ones dead-lettered. */
  attempts?: number;
  retryDelayMs?: number;
  observer?: RunnerObserver;
}

/** A stage with the way it wants to be run: what each stage's composition root (services/<stage>/index.ts) returns. */
export interface StageDefinition<M, S extends Stage<M> = Stage<M>> {
  stage: S;
  run: RunnerOptions;
}

/** What the runner tells metrics and logs. */
export interface RunnerObserver {
  batch?(stage: string, size: number, seconds: number): void;
  stale?(stage: string, record: BusRecord, ageMs: number): void;
  deadLetter?(stage: string, sourceTopic: string, reason: string): void;
  retry?(stage: string, error: Error, attempt: number): void;
}

export interface RunnerStats {
  batches: number;
  records: number;
  stale: number;
  deadLetters: number;
  retries: number;
}

/**
 * Owns a stage's life on a bus: subscribe → decode → drop stale → handle → publish (one send per topic per
 * batch) → checkpoint → commit; retries; dead letters; and the order of things at shutdown. Every process
 * (`vigil run` with all four stages, or one service) runs its stages through this, so there is one copy of it.
 */
export class StageRunner<M> {
  readonly stats: RunnerStats = { batches: 0, records: 0, stale: 0, deadLetters: 0, retries: 0 };
  private subscription: Subscription | undefined;
  private stopping: Promise<void> | undefined;
  /** Settles when the latest batch so far has published its outputs (or failed). */
  private published: Promise<void> = Promise.resolve();

  constructor(
    private readonly bus: Bus,
    readonly stage: Stage<M>,
    private readonly options: RunnerOptions = {},
  ) {}

  get group(): string {
    return this.options.group ?? this.stage.name;
  }

  async start(): Promise<this> {
    const { stage } = this;
    this.subscription = await this.bus.subscribe(
      stage.input.topic,
      {
        group: this.group,
        maxBatch: this.options.maxBatch ?? 16,
        concurrency: this.options.concurrency ?? 1,
        onAssign: (partitions) => stage.assigned?.(partitions),
        onRevoke: (partitions) => stage.revoked?.(partitions),
      },
      (records) => this.process(records),
    );
    return this;
  }

  /**
   * Stops fetching, lets the batch in flight finish and commit, then (`flush`: the input has ended, as at the
   * end of a file run) publishes what the stage held back. A service stopping for a restart does not flush:
   * its state is checkpointed and the next owner carries on.
   */
  stop(options: { flush?: boolean } = {}): Promise<void> {
    this.stopping ??= (async () => {
      await this.subscription?.stop();
      if (options.flush && this.stage.flush) await this.publish(await this.stage.flush());
    })();
    return this.stopping;
  }

  private async process(records: BusRecord[]): Promise<void> {
    const started = performance.now();
    const { stage } = this;
    const dead: Emit[] = [];
    const messages: M[] = [];
    const kept: BusRecord[] = [];
    const now = Date.now();
    const { maxAgeMs, perishable } = this.options;
    for (const record of records) {
      let message: M;
      try {
        message = stage.input.contract.decode(record.value);
      } catch (err) {
        if (!(err instanceof ContractError)) throw err;
        dead.push(this.deadLetter(record, err.message));
        continue;
      }
      const age = now - record.timestamp;
      if (maxAgeMs !== undefined && age > maxAgeMs && (!perishable || perishable(message as never))) {
        this.stats.stale++;
        this.options.observer?.stale?.(stage.name, record, age);
        continue;
      }
      messages.push(message);
      kept.push(record);
    }
    // Handled alongside other batches (concurrency), published after the batch before it: a camera's faces
    // leave in the order its frames came.
    const turn = this.published;
    let outputs: Emit[] = [];
    const mine = (async () => {
      outputs = messages.length > 0 ? await this.handle(messages, kept, dead) : [];
      await turn;
      await this.publish([...dead, ...outputs]);
    })();
    this.published = mine.catch(() => {});
    await mine;
    await stage.checkpoint?.();
    this.stats.batches++;
    this.stats.records += records.length;
    this.options.observer?.batch?.(stage.name, records.length, (performance.now() - started) / 1000);
  }

  /**
   * Retries a failing batch; then, unless the failure is transient (a dependency away: rethrown so the bus
   * redelivers and nothing is lost), isolates the poison by handling each message alone.
   */
  private async handle(messages: M[], records: BusRecord[], dead: Emit[]): Promise<Emit[]> {
    const attempts = this.options.attempts ?? 3;
    let lastError: Error | undefined;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        return await this.stage.handle(messages, { records });
      } catch (err) {
        lastError = err as Error;
        this.stats.retries++;
        this.options.observer?.retry?.(this.stage.name, lastError, attempt);
        if (isTransient(err)) throw err;
        if (attempt < attempts) await sleep((this.options.retryDelayMs ?? 50) * attempt);
      }
    }
    if (messages.length === 1) {
      dead.push(this.deadLetter(records[0]!, `${this.stage.name} failed: ${lastError!.message}`));
      return [];
    }
    const outputs: Emit[] = [];
    for (const [i, message] of messages.entries()) {
      try {
        outputs.push(...(await this.stage.handle([message], { records: [records[i]!] })));
      } catch (err) {
        if (isTransient(err)) throw err;
        dead.push(this.deadLetter(records[i]!, `${this.stage.name} failed: ${(err as Error).message}`));
      }
    }
    return outputs;
  }

  private deadLetter(record: BusRecord, reason: string): Emit {
    this.stats.deadLetters++;
    this.options.observer?.deadLetter?.(this.stage.name, record.topic, reason);
    return deadLetter(record.topic, record, reason);
  }

  private async publish(emits: Emit[]): Promise<void> {
    await publishGrouped(this.bus, emits);
  }
}

/** One send per topic, records in their order within it: Kafka batches them into one produce request. */
export async function publishGrouped(bus: Bus, emits: Emit[]): Promise<void> {
  if (emits.length === 0) return;
  const byTopic = new Map<TopicName, OutRecord[]>();
  for (const e of emits) {
    let list = byTopic.get(e.topic);
    if (!list) byTopic.set(e.topic, (list = []));
    list.push({ key: e.key, value: e.value, release: e.release });
  }
  await Promise.all([...byTopic].map(([topic, records]) => bus.publish(topic, records)));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
