import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { h264Args } from "../../media/generate.ts";

/**
 * Re-encodes a clip, repeated to at least `seconds`, as camera-like H.264 in MPEG-TS (1 s GOP, no B-frames) for
 * the RTSP test server's file mounts. Cached by name, size, rate and length.
 */
export function cameraStream(
  source: string,
  dir: string,
  seconds: number,
  width = 1280,
  height = 720,
  fps = 25,
): string {
  const out = path.join(
    dir,
    `${path.basename(source, path.extname(source))}-${width}x${height}-${fps}fps-${seconds}s.ts`,
  );
  if (existsSync(out)) return out;
  mkdirSync(dir, { recursive: true });
  execFileSync("ffmpeg", [
    "-y",
    "-loglevel",
    "error",
    "-stream_loop",
    "-1",
    "-i",
    source,
    "-t",
    String(seconds),
    "-an",
    "-vf",
    `scale=${width}:${height}:force_original_aspect_ratio=decrease,pad=${width}:${height}:(ow-iw)/2:(oh-ih)/2,fps=${fps}`,
    ...h264Args({ gop: Math.max(1, Math.round(fps)), cameraLike: true, container: "mpegts" }),
    out,
  ]);
  return out;
}
