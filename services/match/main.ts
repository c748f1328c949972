import { hostname } from "node:os";
import type { Bus } from "../../lib/bus/index.ts";
import { recordsAnyCamera, type Config } from "../../lib/config/index.ts";
import { ClipStore } from "../../lib/store/clip-store.ts";
import { Topics } from "../../lib/contracts/index.ts";
import { RetentionScheduler, retentionOptions } from "../../lib/runtime/retention.ts";
import { runService, startStage, type ServiceProcess } from "../../lib/runtime/service.ts";
import { openCheckedStore, openCropStore } from "../../lib/store/open-store.ts";
import { QdrantStore } from "../../lib/store/qdrant-store.ts";
import { createMatch } from "./index.ts";

/** `vigil serve match`: embeddings → tracks, sightings and alerts, against the configured store. */
export function serve(config: Config, bus: Bus): Promise<ServiceProcess> {
  return runService("match", config, bus, async (ctx) => {
    // A missing bucket or refused secret stops the service at start-up, with the reason.
    const store = await openCheckedStore(config);
    // Not ready while the records database (alerts, people, checkpoints) does not answer: batches fail meanwhile
    // and are redelivered once it is back.
    if (store instanceof QdrantStore) ctx.addReadiness("records", () => store.recordsHealthy());
    // Every replica hears every watchlist change (a group of its own), so a person enrolled or removed
    // elsewhere counts from the next face on, whatever the store caches.
    const changes = await bus.subscribe(
      Topics.watchlistChanges,
      { group: `match-watchlist-${hostname()}-${process.pid}` },
      async () => store.invalidate(),
    );
    // Match writes the sightings and alerts and runs as long as the deployment does: retention lives here.
    const clipStore = recordsAnyCamera(config) ? new ClipStore(openCropStore(config)) : undefined;
    const retention = new RetentionScheduler(store, {
      ...retentionOptions(config),
      // Clips are cut by ingest into the crop store; they go with their records.
      clips: clipStore,
      onPurged: (r) => {
        if (r.sightings > 0 || r.alerts > 0 || r.unknowns > 0 || r.clips > 0)
          ctx.log.info(
            { sightings: r.sightings, alerts: r.alerts, unknowns: r.unknowns, clips: r.clips },
            "match: retention deleted expired records",
          );
      },
      onError: (err) => ctx.log.warn({ err }, "match: retention failed; retrying at the next period"),
    }).start(0);
    const stage = await startStage(
      ctx,
      createMatch(config, {
        watchlist: store,
        history: store,
        state: store,
        unknowns: store.unknowns,
        follows: store,
      }),
      async () => {
        await retention.stop();
        await changes.stop();
        store.close();
      },
    ).catch(async (err: unknown) => {
      await retention.stop();
      throw err;
    });
    return stage;
  });
}
