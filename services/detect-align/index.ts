import type { Config } from "../../lib/config/index.ts";
import type { FrameMessage } from "../../lib/contracts/index.ts";
import type { StageDefinition } from "../../lib/runtime/runner.ts";
import type { AnalyzeOptions, FrameAnalyzer } from "../../lib/vision/inference/face-analyzer.ts";
import { DetectAlignStage } from "./stage.ts";

export interface DetectAlignDeps {
  analyzer: FrameAnalyzer;
}

/** frames → aligned faces: the stage and how it runs, from the one config tree. */
export function createDetectAlign(
  config: Config,
  deps: DetectAlignDeps,
): StageDefinition<FrameMessage, DetectAlignStage> {
  // A batching detector takes models.gpu.detectBatch frames a run: batches that size fill it.
  const maxBatch = deps.analyzer.detectBatch ?? config.detect.maxBatch;
  // Two batches per detect worker in flight: one running, one ready the moment it finishes, so a worker never
  // waits on this thread's routing. (A single analyzer on this thread gains nothing from more.)
  const concurrency = config.models.inferenceWorkers ? 2 * config.models.detectWorkers : 1;
  const stage = new DetectAlignStage(
    deps.analyzer,
    { maxBatch, maxWaitMs: config.detect.maxWaitMs, concurrency },
    config.detect.embedGate,
    detectOptionsFor(config),
  );
  return {
    stage,
    run: {
      // Kafka hands a subscription one batch at a time (offsets commit in order), so there one batch must
      // carry work for every worker; the memory bus hands over `concurrency` batches instead.
      maxBatch: config.bus.kind === "kafka" ? maxBatch * config.models.detectWorkers : maxBatch,
      concurrency,
      maxAgeMs: config.detect.maxFrameAgeMs,
      perishable: (frame: FrameMessage) => frame.live === true,
    },
  };
}

/**
 * Each camera's detection: its own `detectMaxSide` and `smallFaces` mode over `detect`'s. Cameras not in the
 * config (`--source`) get `detect`'s values.
 */
export function detectOptionsFor(config: Config): (cameraId: string) => AnalyzeOptions {
  const { maxSide, nmsIou, smallFaces } = config.detect;
  const byCamera = new Map<string, AnalyzeOptions>(
    config.cameras.map((c) => [
      c.id,
      {
        maxSide: c.detectMaxSide ?? maxSide,
        smallFaces: { ...smallFaces, mode: c.smallFaces ?? smallFaces.mode, nmsIou },
      },
    ]),
  );
  const fallback: AnalyzeOptions = { maxSide, smallFaces: { ...smallFaces, nmsIou } };
  return (cameraId) => byCamera.get(cameraId) ?? fallback;
}
