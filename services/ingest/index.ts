import { shardIndex, type Config } from "../../lib/config/index.ts";
import type { Emit } from "../../lib/runtime/stage.ts";
import type { CameraSpec } from "./camera.ts";
import { recordRoot, resolveCamera } from "./camera.ts";
import { CameraManager } from "./camera-manager.ts";
import { camerasOfShard } from "./shards.ts";

export interface IngestDeps {
  /** Where frames and camera-status records go (a bus publish, in every process). */
  publish: (e: Emit) => Promise<void>;
  /**
   * The cameras to run; default (`vigil serve ingest`): this shard's share of the config's. `vigil run` passes its
   * own (--source and the config's, unsharded: one process runs them all).
   */
  cameras?: CameraSpec[];
}

/** The config's cameras this ingest process decodes: all of them, or its shard's (`ingest.shard`). */
export function configuredCameras(config: Config): Config["cameras"] {
  return camerasOfShard(config.cameras, shardIndex(config.ingest.shard), config.ingest.shard.count);
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
  const cameras =
    deps.cameras ?? configuredCameras(config).map((c) => resolveCamera(c, ingest, recordRoot(config)));
  return new CameraManager(cameras, deps.publish, config.ingest);
}
