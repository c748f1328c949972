import type { Bus } from "../../lib/bus/index.ts";
import { shardIndex, type Config } from "../../lib/config/index.ts";
import { publishGrouped } from "../../lib/runtime/runner.ts";
import { runService, type ServiceProcess } from "../../lib/runtime/service.ts";
import type { Emit } from "../../lib/runtime/stage.ts";
import type { Logger } from "../../lib/telemetry/log.ts";
import { startClipCutting } from "./clips.ts";
import { configuredCameras, createIngest } from "./index.ts";

/**
 * Publishes, waiting out a broker that is away rather than failing: a camera keeps its place (a file resumes
 * where it was, a live camera keeps only its newest frame meanwhile) instead of being restarted.
 */
function patientPublisher(bus: Bus, log: Logger, stopped: () => boolean) {
  let outageSince: number | undefined;
  return async (e: Emit): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      try {
        await publishGrouped(bus, [e]);
        if (outageSince !== undefined) {
          log.warn({ seconds: (Date.now() - outageSince) / 1000 }, "ingest: publishing again");
          outageSince = undefined;
        }
        return;
      } catch (err) {
        if (stopped()) throw err;
        if (outageSince === undefined) {
          outageSince = Date.now();
          log.warn(
            { err: (err as Error).message },
            "ingest: cannot publish; holding frames until the bus is back",
          );
        }
        await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** Math.min(attempt, 5))));
      }
    }
  };
}

/** `vigil serve ingest`: the config's cameras → frames and camera status on the bus. */
export function serve(config: Config, bus: Bus): Promise<ServiceProcess> {
  return runService("ingest", config, bus, async (ctx) => {
    if (config.cameras.length === 0) throw new Error("ingest: no cameras in the config (`cameras: [...]`)");
    const index = shardIndex(config.ingest.shard);
    const { count } = config.ingest.shard;
    const mine = configuredCameras(config);
    if (count > 1)
      ctx.log.info(
        { shard: index, shards: count, cameras: mine.map((c) => c.id) },
        `ingest: shard ${index} of ${count} decodes ${mine.length} of ${config.cameras.length} cameras`,
      );
    let stopping = false;
    const publish = patientPublisher(bus, ctx.log, () => stopping);
    const manager = createIngest(config, {
      publish: async (e) => {
        ctx.metrics.ingestPublished(e);
        await publish(e);
      },
    }).start();
    // Each shard hears every alert (a group of its own) and cuts the clips of the cameras it records.
    const clips = await startClipCutting(config, bus, manager.recordings(), `vigil-clips-${index}`, (m) =>
      ctx.log.info(`clips: ${m}`),
    );
    // A shard the hashing gave no camera stays up, ready, until stopped (the list is read at start: a new one
    // comes with a restart), so a StatefulSet does not restart it in a loop.
    let stopped: () => void = () => {};
    const idle = new Promise<void>((resolve) => (stopped = resolve));
    return {
      stop: async () => {
        stopping = true;
        stopped();
        await manager.stop();
        await clips?.stop();
      },
      done: mine.length ? manager.done() : idle,
    };
  });
}
