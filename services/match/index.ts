import type { Config } from "../../lib/config/index.ts";
import type { EmbeddingMessage } from "../../lib/contracts/index.ts";
import type { StageDefinition } from "../../lib/runtime/runner.ts";
import type { AlertStore } from "../../lib/store/alert-store.ts";
import type { SightingStore } from "../../lib/store/sighting-store.ts";
import type { StateStore } from "../../lib/store/state-store.ts";
import type { WatchlistStore } from "../../lib/store/watchlist-store.ts";
import { minTrustFor, thresholdFor } from "../../lib/vision/models/calibration.ts";
import { MatchStage } from "./stage.ts";

export interface MatchDeps {
  watchlist: WatchlistStore;
  history: SightingStore & AlertStore;
  /** Where a service checkpoints its open tracks (crash safety); none in one process. */
  state?: StateStore;
}

/** embeddings → tracks, sightings and alerts: the stage and how it runs, from the one config tree. */
export function createMatch(config: Config, deps: MatchDeps): StageDefinition<EmbeddingMessage, MatchStage> {
  const stage = new MatchStage(deps.watchlist, deps.history, {
    thresholdFor: (modelId) => thresholdFor(modelId, config),
    minTrustFor: (modelId) => minTrustFor(modelId, config),
    alertCooldownMs: config.match.alertCooldownS * 1000,
    tracker: {
      timeoutMs: config.match.trackTimeoutS * 1000,
      similarity: config.match.trackSimilarity,
      iou: config.match.trackIou,
      reacquire: config.match.trackReacquire,
    },
    exclusionSimilarity: config.match.exclusionSimilarity,
    ...(deps.state
      ? { checkpoints: { state: deps.state, namespace: `match-state:${config.service.group ?? "match"}` } }
      : {}),
  });
  return { stage, run: { maxBatch: 32 } };
}
