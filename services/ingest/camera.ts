import path from "node:path";
import type { CameraConfig, Config } from "../../lib/config/index.ts";
import type { RecordSpec } from "../../lib/media/recording.ts";

/** A camera with every ingest default resolved: what a supervisor needs and nothing else. */
export interface CameraSpec {
  id: string;
  url: string;
  fps: number;
  /** Files: width cap. Live: letterbox size. */
  maxWidth: number;
  width: number;
  height: number;
  transport: "tcp" | "udp";
  keyframesOnly: boolean;
  hwaccel?: string;
  loop: boolean;
  /** Raw yuv420p, or JPEG (scale-out: ~40× fewer bytes on Kafka); `auto` is resolved by the caller. */
  encoding: "yuv420p" | "jpeg";
  jpegQuality: number;
  /** Its rolling recording, when its `record.keep` is not `off`. */
  record?: RecordSpec;
}

export { isHttpUrl, isLiveUrl } from "../../lib/media/camera-url.ts";

/**
 * A camera with the ingest defaults applied. `recordRoot`: where recordings go (a folder per camera); without it
 * nothing is recorded (benches, tools).
 */
export function resolveCamera(
  camera: CameraConfig,
  ingest: Config["ingest"],
  recordRoot?: string,
): CameraSpec {
  const { keep, ...record } = { ...ingest.record, ...camera.record };
  return {
    id: camera.id,
    url: camera.url,
    fps: camera.fps ?? ingest.fps,
    maxWidth: ingest.maxWidth,
    width: camera.width ?? ingest.width,
    height: camera.height ?? ingest.height,
    transport: camera.transport ?? ingest.transport,
    keyframesOnly: camera.keyframesOnly ?? ingest.keyframesOnly,
    hwaccel: camera.hwaccel ?? ingest.hwaccel,
    loop: camera.loop,
    encoding: ingest.frameEncoding === "jpeg" ? "jpeg" : "yuv420p",
    jpegQuality: ingest.jpegQuality,
    ...(recordRoot && keep !== "off"
      ? {
          record: {
            ...record,
            keep,
            dir: path.join(recordRoot, camera.id),
            frame: { width: camera.width ?? ingest.width, height: camera.height ?? ingest.height },
          },
        }
      : {}),
  };
}

/** Where a config's cameras record: `ingest.recordDir`, or `<dataDir>/recordings`. */
export const recordRoot = (config: Pick<Config, "dataDir" | "ingest">) =>
  path.resolve(config.ingest.recordDir ?? path.join(config.dataDir, "recordings"));
