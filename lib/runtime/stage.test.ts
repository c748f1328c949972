import { describe, expect, it } from "vitest";
import { MemoryBus } from "../bus/index.ts";
import {
  CameraStatusContract,
  DeadLetterContract,
  FrameContract,
  Topics,
  type FrameMessage,
} from "../contracts/index.ts";
import { runStage, type Emit, type Stage } from "./stage.ts";

/** The unit under test is runStage; this stage just echoes camera ids so the wiring is observable. */
class EchoStage implements Stage<FrameMessage> {
  readonly name = "echo";
  readonly input = { topic: Topics.frames, contract: FrameContract };
  seen: number[] = [];
  async handle(batch: FrameMessage[]): Promise<Emit[]> {
    this.seen.push(...batch.map((f) => f.seq));
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

describe("runStage", () => {
  it("sends malformed records to the dead-letter topic with the reason and original bytes, and handles the rest", async () => {
    const bus = new MemoryBus({ capacity: 16 });
    const stage = new EchoStage();
    await runStage(bus, stage);
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
});
