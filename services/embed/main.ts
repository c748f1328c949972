import type { Bus } from "../../lib/bus/index.ts";
import type { Config } from "../../lib/config/index.ts";
import { openInference } from "../../lib/runtime/inference.ts";
import { runService, startStage, type ServiceProcess } from "../../lib/runtime/service.ts";
import { createEmbed } from "./index.ts";

/** `vigil serve embed`: aligned faces from the bus → embeddings, batched across every camera's faces. */
export function serve(config: Config, bus: Bus): Promise<ServiceProcess> {
  return runService("embed", config, bus, async (ctx) => {
    const inference = await openInference(config, { embedder: true }, (line) => ctx.log.info(line));
    return startStage(ctx, createEmbed(config, { embedder: inference.embedder }), () => inference.close());
  });
}
