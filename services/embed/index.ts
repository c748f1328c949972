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
  // Two batches per embed worker in flight, as for detection; one thread's embedder runs one at a time.
  const concurrency = config.models.inferenceWorkers ? 2 * config.models.embedWorkers : 1;
  const stage = new EmbedStage(deps.embedder, {
    maxBatch: config.embed.maxBatch,
    maxWaitMs: config.embed.maxWaitMs,
    concurrency,
  });
  return { stage, run: { maxBatch: config.embed.maxBatch, concurrency } };
}
