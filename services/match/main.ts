import type { Bus } from "../../lib/bus/index.ts";
import type { Config } from "../../lib/config/index.ts";
import { runService, startStage, type ServiceProcess } from "../../lib/runtime/service.ts";
import { openStore } from "../../lib/store/open-store.ts";
import { createMatch } from "./index.ts";

/** `vigil serve match`: embeddings → tracks, sightings and alerts, against the configured store. */
export function serve(config: Config, bus: Bus): Promise<ServiceProcess> {
  return runService("match", config, bus, async (ctx) => {
    const store = openStore(config);
    return startStage(ctx, createMatch(config, { watchlist: store, history: store }), async () =>
      store.close(),
    );
  });
}
