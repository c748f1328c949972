import type { Bus } from "../../lib/bus/index.ts";
import type { Config } from "../../lib/config/index.ts";
import { openInference } from "../../lib/runtime/inference.ts";
import { runService, startStage, type ServiceProcess } from "../../lib/runtime/service.ts";
import { createDetectAlign } from "./index.ts";

/** `vigil serve detect-align`: frames from the bus → aligned faces, models in worker threads. */
export function serve(config: Config, bus: Bus): Promise<ServiceProcess> {
  return runService("detect-align", config, bus, async (ctx) => {
    const inference = await openInference(config, { analyzer: true }, (line) => ctx.log.info(line));
    const definition = createDetectAlign(config, { analyzer: inference.analyzer });
    const { stats } = definition.stage;
    definition.stage.onFrameProcessed = (frame) => ctx.metrics.frameProcessed(frame.cameraId);
    ctx.metrics.gaugeFrom(
      "vigil_faces_rejected",
      "faces below the quality gate, by reason",
      "reason",
      () => stats.rejectedBy,
    );
    ctx.metrics.gaugeFrom(
      "vigil_faces",
      "faces that passed the gate, those of them below the photo gate (weak looks), and those sent to be embedded",
      "kind",
      () => ({
        passed: stats.faces,
        weak: stats.weak,
        embedded: stats.embedded,
      }),
    );
    return startStage(ctx, definition, () => inference.close());
  });
}
