import type { Config } from "../../lib/config/index.ts";
import type { Emit } from "../../lib/runtime/stage.ts";
import type { CameraSpec } from "./camera.ts";
import { resolveCamera } from "./camera.ts";
import { CameraManager } from "./camera-manager.ts";

export interface IngestDeps {
  /** Where frames and camera-status records go (a bus publish, in every process). */
  publish: (e: Emit) => Promise<void>;
  /** The cameras to run; default: the config's (`vigil run` adds those given with --source). */
  cameras?: CameraSpec[];
}

/** cameras → frames: ingest is a source, not a consumer, so it is a camera manager rather than a stage. */
export function createIngest(config: Config, deps: IngestDeps): CameraManager {
  // Frames cross the network on Kafka, where JPEG's bytes matter; in one process raw frames cost nothing.
  const ingest = {
    ...config.ingest,
    frameEncoding:
      config.ingest.frameEncoding === "auto"
        ? config.bus.kind === "kafka"
          ? ("jpeg" as const)
          : ("yuv420p" as const)
        : config.ingest.frameEncoding,
  };
  const cameras = deps.cameras ?? config.cameras.map((c) => resolveCamera(c, ingest));
  return new CameraManager(cameras, deps.publish, config.ingest);
}
