import { describe, expect, it } from "vitest";
import { MemoryBus } from "../bus/index.ts";
import {
  CameraStatusContract,
  DeadLetterContract,
  FrameContract,
  Topics,
  type FrameMessage,
} from "../contracts/index.ts";
import { TransientError } from "./errors.ts";
import { StageRunner } from "./runner.ts";
import type { BatchInfo, Emit, Stage } from "./stage.ts";

/** The unit under test is the runner; this stage echoes frame numbers so the wiring is observable. */
class EchoStage implements Stage<FrameMessage> {
  readonly name = "echo";
  readonly input = { topic: Topics.frames, contract: FrameContract };
  seen: number[] = [];
  offsets: string[] = [];
  checkpoints = 0;
  /** Frame numbers that make handle() throw, and how. */
  poison = new Set<number>();
  transientFailures = 0;
  held: Emit[] = [];
  async handle(batch: FrameMessage[], info: BatchInfo): Promise<Emit[]> {
    if (this.transientFailures > 0) {
      this.transientFailures--;
      throw new TransientError("store away");
    }
    if (batch.some((f) => this.poison.has(f.seq)))
      throw new Error(`cannot handle ${batch.map((f) => f.seq)}`);
    this.seen.push(...batch.map((f) => f.seq));
    this.offsets.push(...info.records.map((r) => r.offset));
    return batch.map((f) => ({
      topic: Topics.cameraStatus,
      key: f.cameraId,
      value: CameraStatusContract.encode({
        cameraId: f.cameraId,
        state: "live",
        ts: f.captureTs,
        lastError: null,
        framesIn: f.seq,
        framesDropped: 0,
        framesUndecodable: 0,
        reconnects: 0,
      }),
    }));
  }
  async checkpoint() {
    this.checkpoints++;
  }
  async flush(): Promise<Emit[]> {
    return this.held.splice(0);
  }
}

const frame = (seq: number) =>
  FrameContract.encode({
    cameraId: "cam-1",
    seq,
    captureTs: 1000 + seq,
    width: 1,
    height: 1,
    format: "bgr24",
    image: new Uint8Array(3),
  });

async function harness(options: ConstructorParameters<typeof StageRunner>[2] = {}) {
  const bus = new MemoryBus({ capacity: 64, retryDelayMs: 1 });
  const stage = new EchoStage();
  const runner = await new StageRunner(bus, stage, { retryDelayMs: 1, ...options }).start();
  const dead: { reason: string; original: Uint8Array; sourceTopic: string }[] = [];
  const outputs: number[] = [];
  await bus.subscribe(
    Topics.dlq,
    { group: "t" },
    async (rs) => void dead.push(...rs.map((r) => DeadLetterContract.decode(r.value))),
  );
  await bus.subscribe(
    Topics.cameraStatus,
    { group: "t" },
    async (rs) => void outputs.push(...rs.map((r) => CameraStatusContract.decode(r.value).framesIn)),
  );
  return { bus, stage, runner, dead, outputs };
}

const frames = (...seqs: number[]) => seqs.map((seq) => ({ key: "cam-1", value: frame(seq) }));

describe("StageRunner", () => {
  it("sends malformed records to the dead-letter topic with the reason and original bytes, and handles the rest", async () => {
    const { bus, stage, dead, outputs } = await harness();
    const garbage = new TextEncoder().encode("{not a frame}");
    await bus.publish(Topics.frames, [
      { key: "cam-1", value: frame(1) },
      { key: "cam-1", value: garbage },
      { key: "cam-1", value: frame(2) },
    ]);
    await bus.drain();
    expect(stage.seen).toEqual([1, 2]);
    expect(outputs).toEqual([1, 2]);
    expect(dead).toHaveLength(1);
    expect(dead[0]!.sourceTopic).toBe(Topics.frames);
    expect(dead[0]!.reason).toMatch(/malformed frame message: bad magic/);
    expect(Buffer.from(dead[0]!.original).toString()).toBe("{not a frame}");
    await bus.close();
  });

  it("hands the stage each message's record, checkpoints every batch, and flushes held outputs on a final stop", async () => {
    const { bus, stage, runner, outputs } = await harness({ maxBatch: 2 });
    await bus.publish(Topics.frames, frames(1, 2, 3));
    await bus.drain();
    expect(stage.offsets).toEqual(["0", "1", "2"]);
    expect(stage.checkpoints).toBe(2);
    stage.held.push({
      topic: Topics.cameraStatus,
      key: "cam-1",
      value: CameraStatusContract.encode({
        cameraId: "cam-1",
        state: "ended",
        ts: 1,
        lastError: null,
        framesIn: 99,
        framesDropped: 0,
        framesUndecodable: 0,
        reconnects: 0,
      }),
    });
    await runner.stop({ flush: true });
    await bus.drain();
    expect(outputs).toEqual([1, 2, 3, 99]);
    await bus.close();
  });

  it("dead-letters only the record that fails on its own, with the stage's error, and keeps the rest", async () => {
    const { bus, stage, runner, dead, outputs } = await harness({ maxBatch: 8 });
    stage.poison.add(2);
    await bus.publish(Topics.frames, frames(1, 2, 3));
    await bus.drain();
    expect(outputs).toEqual([1, 3]);
    expect(dead.map((d) => d.reason)).toEqual(["echo failed: cannot handle 2"]);
    expect(FrameContract.decode(dead[0]!.original).seq).toBe(2);
    expect(runner.stats.deadLetters).toBe(1);
    await bus.close();
  });

  it("waits out a transient failure (a store away) by redelivery, dead-lettering nothing", async () => {
    const { bus, stage, dead, outputs } = await harness({ attempts: 2 });
    stage.transientFailures = 5;
    await bus.publish(Topics.frames, frames(1, 2));
    await bus.drain();
    expect(outputs).toEqual([1, 2]);
    expect(dead).toEqual([]);
    await bus.close();
  });

  it("handles several batches at once (concurrency) yet publishes their outputs in the order they came", async () => {
    const { bus, stage, outputs } = await harness({ maxBatch: 2, concurrency: 3 });
    let running = 0;
    let most = 0;
    const handle = stage.handle.bind(stage);
    // Earlier batches take longer, so later ones finish first: outputs must still leave in arrival order.
    stage.handle = async (batch, info) => {
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, 60 - 10 * batch[0]!.seq));
      running--;
      return handle(batch, info);
    };
    await bus.publish(Topics.frames, frames(0, 1, 2, 3, 4, 5));
    await bus.drain();
    expect(most).toBe(3);
    expect(outputs).toEqual([0, 1, 2, 3, 4, 5]);
    // Every batch checkpointed once (the bus hands over whatever has arrived, up to 2 at a time).
    expect(stage.checkpoints).toBeGreaterThanOrEqual(3);
    await bus.close();
  });

  it("drops records older than maxAgeMs when they arrive, and counts them", async () => {
    const { bus, stage, runner, outputs } = await harness({ maxAgeMs: 50 });
    await runner.stop();
    await bus.publish(Topics.frames, frames(1));
    await new Promise((r) => setTimeout(r, 80));
    await bus.publish(Topics.frames, frames(2));
    const again = await new StageRunner(bus, stage, { maxAgeMs: 50 }).start();
    await bus.drain();
    expect(outputs).toEqual([2]);
    expect(again.stats.stale).toBe(1);
    await bus.close();
  });

  it("lets only perishable messages go stale (a file's frames wait their turn)", async () => {
    const { bus, stage, runner, outputs } = await harness();
    await runner.stop();
    await bus.publish(Topics.frames, frames(1, 2));
    await new Promise((r) => setTimeout(r, 80));
    const again = await new StageRunner(bus, stage, {
      maxAgeMs: 50,
      perishable: (f: FrameMessage) => f.seq === 1,
    }).start();
    await bus.drain();
    expect(outputs).toEqual([2]);
    expect(again.stats.stale).toBe(1);
    await bus.close();
  });
});
