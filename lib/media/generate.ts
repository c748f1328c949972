import { execFileSync } from "node:child_process";

export interface H264Options {
  preset?: string;
  /** Keyframe interval in frames. */
  gop?: number;
  /** Shaped like an IP camera's stream: no B-frames, no look-ahead (x264's zerolatency tune). */
  cameraLike?: boolean;
  bitrate?: string;
  container?: "mp4" | "mpegts";
}

/** ffmpeg output arguments for H.264 in the shapes Vigil's tests, benches and demo need. */
export function h264Args(o: H264Options = {}): string[] {
  return [
    "-c:v",
    "libx264",
    "-preset",
    o.preset ?? "veryfast",
    ...(o.cameraLike ? ["-tune", "zerolatency"] : []),
    ...(o.gop ? ["-g", String(o.gop)] : []),
    ...(o.bitrate ? ["-b:v", o.bitrate] : []),
    "-pix_fmt",
    "yuv420p",
    ...(o.container === "mpegts" ? ["-f", "mpegts"] : []),
  ];
}

/** A video from one of ffmpeg's generated sources (`testsrc2=size=640x360:rate=25:duration=3`, …). */
export function generateVideo(lavfi: string, out: string, o: H264Options = {}) {
  execFileSync("ffmpeg", ["-y", "-loglevel", "error", "-f", "lavfi", "-i", lavfi, ...h264Args(o), out]);
}

/** One still frame from a generated source (`color=c=gray:s=640x480`). */
export function generateImage(lavfi: string, out: string) {
  execFileSync("ffmpeg", ["-y", "-loglevel", "error", "-f", "lavfi", "-i", lavfi, "-frames:v", "1", out]);
}
