import type { Config } from "../config/index.ts";
import type { Embedder } from "../vision/inference/embedder.ts";
import type { FrameAnalyzer } from "../vision/inference/face-analyzer.ts";
import { loadVision } from "../vision/inference/vision.ts";
import { startVisionThreads } from "../vision/threads/vision-thread.ts";

export interface Inference {
  analyzer: FrameAnalyzer;
  embedder: Embedder;
  packId: string;
  fallbackReason?: string;
  close(): Promise<void>;
}

/**
 * Models for one process, in worker threads when `models.inferenceWorkers` (ONNX Runtime blocks the thread it
 * runs on, and a service's event loop must keep heartbeating its consumer group), only for the roles it has.
 */
export async function openInference(
  config: Config,
  roles: { analyzer?: boolean; embedder?: boolean },
  log: (line: string) => void,
): Promise<Inference> {
  const vision = await loadVision(config, log, (m) => log(m.trim()));
  const base = { packId: vision.pack.id, fallbackReason: vision.fallbackReason };
  if (!config.models.inferenceWorkers)
    return { ...base, analyzer: vision.analyzer, embedder: vision.embedder, close: async () => {} };
  const threads = await startVisionThreads(config, vision, roles);
  return { ...base, ...threads };
}
