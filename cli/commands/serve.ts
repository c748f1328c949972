import type { Bus } from "../../lib/bus/index.ts";
import { openStageBus } from "../../lib/bus/open-bus.ts";
import type { Config } from "../../lib/config/index.ts";
import type { ServiceProcess } from "../../lib/runtime/service.ts";
import { UsageError } from "../context.ts";

type Serve = (config: Config, bus: Bus) => Promise<ServiceProcess>;

/** Each stage's process entry, loaded only when asked for (an ingest process never loads ONNX Runtime). */
const entries: Record<string, () => Promise<{ serve: Serve }>> = {
  ingest: () => import("../../services/ingest/main.ts"),
  "detect-align": () => import("../../services/detect-align/main.ts"),
  embed: () => import("../../services/embed/main.ts"),
  match: () => import("../../services/match/main.ts"),
  api: () => import("../../services/api/main.ts"),
};

export const serviceNames = Object.keys(entries);

/** `vigil serve <stage>`: one stage as this process, on the configured bus, until SIGTERM; the exit code. */
export async function serveCommand(config: Config, stage: string): Promise<number> {
  const entry = entries[stage];
  if (!entry) throw new UsageError(`no stage ${stage}; one of ${serviceNames.join(", ")}`);
  const { serve } = await entry();
  const service = await serve(config, await openStageBus(config));
  return service.exited;
}
