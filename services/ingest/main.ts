import type { Bus } from "../../lib/bus/index.ts";
import type { Config } from "../../lib/config/index.ts";
import { publishGrouped } from "../../lib/runtime/runner.ts";
import { runService, type ServiceProcess } from "../../lib/runtime/service.ts";
import { createIngest } from "./index.ts";

/** `vigil serve ingest`: the config's cameras → frames and camera status on the bus. */
export function serve(config: Config, bus: Bus): Promise<ServiceProcess> {
  return runService("ingest", config, bus, async (ctx) => {
    if (config.cameras.length === 0) throw new Error("ingest: no cameras in the config (`cameras: [...]`)");
    const manager = createIngest(config, {
      publish: async (e) => {
        ctx.metrics.ingestPublished(e);
        await publishGrouped(bus, [e]);
      },
    }).start();
    return {
      stop: async () => void (await manager.stop()),
      done: manager.done(),
    };
  });
}
