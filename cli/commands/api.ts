import type { Bus } from "../../lib/bus/index.ts";
import type { Config } from "../../lib/config/index.ts";
import type { Store } from "../../lib/store/open-store.ts";
import { openApiStore } from "../../lib/store/open-store.ts";
import { createLogger } from "../../lib/telemetry/log.ts";
import { Metrics } from "../../lib/telemetry/metrics.ts";
import type { Vision } from "../../lib/vision/inference/vision.ts";
import { thresholdFor } from "../../lib/vision/models/calibration.ts";
import { photoEmbedder } from "../../lib/watchlist/photo.ts";
import { parseListen, startApi, type RunningApi } from "../../services/api/index.ts";
import { UsageError } from "../context.ts";

/**
 * `vigil run --api host:port`: the API inside the embedded process, on the pipeline's memory bus and the run's
 * store (keys and the audit log in the same SQLite file, so `vigil keys create` beforehand is all it takes).
 */
export async function startEmbeddedApi(
  config: Config,
  listen: string,
  parts: { bus: Bus; store: Store; vision: Vision; storeFile?: string },
): Promise<RunningApi> {
  let address;
  try {
    address = parseListen(listen, config);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const log = createLogger("api", config);
  const apiStore = await openApiStore(config, parts.storeFile, log);
  try {
    const api = await startApi({
      config,
      bus: parts.bus,
      store: parts.store,
      apiStore,
      photos: photoEmbedder(parts.vision),
      videoModels: async () => parts.vision,
      thresholdFor: (modelId) => thresholdFor(modelId, config),
      // Same process, same store object: the match stage reads a change at once when told.
      changes: { announce: () => parts.store.invalidate() },
      metrics: new Metrics("api"),
      log,
      group: "api",
      listen: address,
    });
    process.stderr.write(`vigil: API at ${api.url} (OpenAPI: ${api.url}/openapi.json)\n`);
    return {
      ...api,
      stop: async () => {
        try {
          await api.stop();
        } finally {
          await apiStore.close();
        }
      },
    };
  } catch (err) {
    await apiStore.close();
    throw err;
  }
}

/** Once every camera has ended, the API stays up for the operator until SIGINT / SIGTERM / the abort signal. */
export function untilInterrupted(signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      process.off("SIGINT", done);
      process.off("SIGTERM", done);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    if (signal?.aborted) return resolve();
    process.once("SIGINT", done);
    process.once("SIGTERM", done);
    signal?.addEventListener("abort", done);
  });
}
