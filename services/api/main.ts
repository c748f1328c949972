import type { Bus } from "../../lib/bus/index.ts";
import type { Config } from "../../lib/config/index.ts";
import { runService, type ServiceProcess } from "../../lib/runtime/service.ts";
import { openApiStore, openCheckedStore } from "../../lib/store/open-store.ts";
import { loadVision } from "../../lib/vision/inference/vision.ts";
import { thresholdFor } from "../../lib/vision/models/calibration.ts";
import { busChanges } from "../../lib/watchlist/bus-changes.ts";
import { photoEmbedder } from "../../lib/watchlist/photo.ts";
import { startApi } from "./index.ts";

/**
 * `vigil serve api`: the operator API as its own process on the configured bus and store. Health, readiness and
 * metrics are served both on `service.port` (like every stage) and on the API's own port.
 *
 * Consumer group: `service.group`, default `api`. Each replica must see every alert (its clients' streams), so
 * give each replica a group of its own (e.g. VIGIL_SERVICE__GROUP=api-$(POD_NAME) in a StatefulSet).
 */
export function serve(config: Config, bus: Bus): Promise<ServiceProcess> {
  return runService("api", config, bus, async (ctx) => {
    const store = await openCheckedStore(config);
    // A records database that cannot be reached fails the start (with its address); the store goes back first.
    const apiStore = await openApiStore(config, undefined, ctx.log).catch((err: unknown) => {
      store.close();
      throw err;
    });
    // Models load on the first photo, not at start: most requests never need them.
    let vision: ReturnType<typeof loadVision> | undefined;
    const models = () => (vision ??= loadVision(config, (line) => ctx.log.info(line)));
    const photos = photoEmbedder(models);
    try {
      const api = await startApi({
        config,
        bus,
        store,
        apiStore,
        photos,
        videoModels: models,
        thresholdFor: (modelId) => thresholdFor(modelId, config),
        changes: config.bus.kind === "kafka" ? busChanges(bus) : undefined,
        metrics: ctx.metrics,
        log: ctx.log,
        group: config.service.group ?? "api",
      });
      ctx.addReadiness("api", () => api.app.server.listening);
      // Not ready while the records database is away: keys cannot be checked nor alerts queued for delivery.
      ctx.addReadiness("records", () => apiStore.healthy());
      return {
        stop: async () => {
          try {
            await api.stop();
          } finally {
            await apiStore.close();
            store.close();
          }
        },
      };
    } catch (err) {
      await apiStore.close();
      store.close();
      throw err;
    }
  });
}
