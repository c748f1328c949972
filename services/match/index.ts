import type { Config } from "../../lib/config/index.ts";
import type { EmbeddingMessage } from "../../lib/contracts/index.ts";
import type { StageDefinition } from "../../lib/runtime/runner.ts";
import type { AlertStore } from "../../lib/store/alert-store.ts";
import type { SightingStore } from "../../lib/store/sighting-store.ts";
import type { StateStore } from "../../lib/store/state-store.ts";
import type { IdentityStore } from "../../lib/store/identity-store.ts";
import { unknownThresholdFor } from "../../lib/identities/threshold.ts";
import type { WatchlistStore } from "../../lib/store/watchlist-store.ts";
import {
  assertPackCalibrated,
  minTrustFor,
  recognisabilityFor,
  thresholdFor,
} from "../../lib/vision/models/calibration.ts";
import { Follows } from "../../lib/watchlist/follows.ts";
import { MatchStage } from "./stage.ts";

export interface MatchDeps {
  watchlist: WatchlistStore;
  history: SightingStore & AlertStore;
  /** Where a service checkpoints its open tracks (crash safety); none in one process. */
  state?: StateStore;
  /** Where sightings that match nobody are grouped into unknown identities (`identities.enabled`). */
  unknowns?: IdentityStore;
  /** Where follows are kept (`vigil follow`): followed people's alerts skip the cool-down. */
  follows?: StateStore;
}

/** embeddings → tracks, sightings and alerts: the stage and how it runs, from the one config tree. */
export function createMatch(config: Config, deps: MatchDeps): StageDefinition<EmbeddingMessage, MatchStage> {
  // Said once at start, not as a failure on every embedding: a declared embedder must have been calibrated.
  assertPackCalibrated(config);
  const stage = new MatchStage(deps.watchlist, deps.history, {
    thresholdFor: (modelId) => thresholdFor(modelId, config),
    minTrustFor: (modelId) => minTrustFor(modelId, config),
    recognisabilityFor: (modelId) => recognisabilityFor(modelId, config),
    alertCooldownMs: config.match.alertCooldownS * 1000,
    ...(deps.follows ? { follows: new Follows(deps.follows) } : {}),
    tracker: {
      timeoutMs: config.match.trackTimeoutS * 1000,
      similarity: config.match.trackSimilarity,
      iou: config.match.trackIou,
      reacquire: config.match.trackReacquire,
    },
    exclusionSimilarity: config.match.exclusionSimilarity,
    ...(deps.unknowns && config.identities.enabled
      ? {
          unknowns: {
            store: deps.unknowns,
            thresholdFor: (modelId: string) => unknownThresholdFor(modelId, config),
          },
        }
      : {}),
    ...(deps.state
      ? { checkpoints: { state: deps.state, namespace: `match-state:${config.service.group ?? "match"}` } }
      : {}),
  });
  return { stage, run: { maxBatch: 32 } };
}
