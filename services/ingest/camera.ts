import type { CameraConfig, Config } from "../../lib/config/index.ts";

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
}

export const isLiveUrl = (url: string) => /^(rtsps?|rtmp|srt|udp|tcp):\/\//i.test(url);
export const isHttpUrl = (url: string) => /^https?:\/\//i.test(url);

export function resolveCamera(camera: CameraConfig, ingest: Config["ingest"]): CameraSpec {
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
  };
}
