import type { Config } from "../../lib/config/index.ts";
import type { FaceMessage } from "../../lib/contracts/index.ts";
import type { StageDefinition } from "../../lib/runtime/runner.ts";
import type { Embedder } from "../../lib/vision/inference/embedder.ts";
import { EmbedStage } from "./stage.ts";

export interface EmbedDeps {
  embedder: Embedder;
}

/** aligned faces → embeddings: the stage and how it runs, from the one config tree. */
export function createEmbed(config: Config, deps: EmbedDeps): StageDefinition<FaceMessage, EmbedStage> {
  const stage = new EmbedStage(deps.embedder, {
    maxBatch: config.embed.maxBatch,
    maxWaitMs: config.embed.maxWaitMs,
  });
  return { stage, run: { maxBatch: config.embed.maxBatch } };
}
