import type { Config } from "../../lib/config/index.ts";
import type { FrameMessage } from "../../lib/contracts/index.ts";
import type { StageDefinition } from "../../lib/runtime/runner.ts";
import type { FrameAnalyzer } from "../../lib/vision/inference/face-analyzer.ts";
import { DetectAlignStage } from "./stage.ts";

export interface DetectAlignDeps {
  analyzer: FrameAnalyzer;
}

/** frames → aligned faces: the stage and how it runs, from the one config tree. */
export function createDetectAlign(
  config: Config,
  deps: DetectAlignDeps,
): StageDefinition<FrameMessage, DetectAlignStage> {
  const stage = new DetectAlignStage(
    deps.analyzer,
    { maxBatch: config.detect.maxBatch, maxWaitMs: config.detect.maxWaitMs },
    config.detect.embedGate,
  );
  return {
    stage,
    run: {
      maxBatch: config.detect.maxBatch,
      maxAgeMs: config.detect.maxFrameAgeMs,
      perishable: (frame: FrameMessage) => frame.live === true,
    },
  };
}
