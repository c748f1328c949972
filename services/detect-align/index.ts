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
  const stage = new DetectAlignStage(
    deps.analyzer,
    { maxBatch, maxWaitMs: config.detect.maxWaitMs },
    config.detect.embedGate,
    detectOptionsFor(config),
  );
  return {
    stage,
    run: {
      maxBatch,
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
