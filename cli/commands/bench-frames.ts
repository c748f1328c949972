import { spawn } from "node:child_process";
import path from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { tempDirFor } from "../../lib/util/temp.ts";
import { decodeImage } from "../../lib/vision/pixels/image.ts";
import type { Config } from "../../lib/config/index.ts";
import { benchFaceVideo } from "../../lib/media/sample-media.ts";

export interface FrameEncodingResult {
  encoding: string;
  bytesPerFrame: number;
  /** CPU per frame where the frame is made (ingest) beyond decoding the video, and where it is read. */
  producerCpuMsPerFrame: number;
  consumerCpuMsPerFrame: number;
}

export interface BenchFramesResult {
  source: string;
  width: number;
  height: number;
  frames: number;
  results: FrameEncodingResult[];
}

const WIDTH = 1280;
const HEIGHT = 720;

/** Runs ffmpeg with -benchmark and returns its stdout and its own CPU seconds (user + system). */
function ffmpegRun(args: string[]): Promise<{ out: Buffer; cpuSeconds: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn("ffmpeg", ["-hide_banner", "-benchmark", "-threads", "1", ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const chunks: Buffer[] = [];
    let err = "";
    child.stdout.on("data", (c: Buffer) => chunks.push(c));
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      const m = /utime=([\d.]+)s stime=([\d.]+)s/.exec(err);
      if (code !== 0 || !m) return reject(new Error(`ffmpeg failed (${code}): ${err.slice(-400)}`));
      resolve({ out: Buffer.concat(chunks), cpuSeconds: Number(m[1]) + Number(m[2]) });
    });
  });
}

/** Splits concatenated JPEGs (ffmpeg's image2pipe) at their end-of-image markers. */
function splitJpegs(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 1; i < buf.length; i++) {
    if (buf[i - 1] === 0xff && buf[i] === 0xd9) {
      out.push(buf.subarray(start, i + 1));
      start = i + 1;
    }
  }
  return out;
}

function cpuMs<T>(fn: () => T): { value: T; ms: number } {
  const before = process.cpuUsage();
  const value = fn();
  const d = process.cpuUsage(before);
  return { value, ms: (d.user + d.system) / 1000 };
}

/**
 * What a frame costs on Kafka in each candidate encoding: bytes on the wire, CPU to make it at ingest (beyond
 * decoding the camera's H.264, which every choice pays) and CPU to read it back in detect-align.
 */
export async function benchFrames(config: Config, frames: number): Promise<BenchFramesResult> {
  const source = await benchFaceVideo(config, tempDirFor(config, "bench-frames"));
  const input = [
    "-stream_loop",
    "-1",
    "-i",
    source,
    "-vf",
    `fps=5,scale=${WIDTH}:${HEIGHT}:force_original_aspect_ratio=decrease,pad=${WIDTH}:${HEIGHT}:(ow-iw)/2:(oh-ih)/2`,
    "-frames:v",
    String(frames),
  ];
  const raw = await ffmpegRun([...input, "-pix_fmt", "yuv420p", "-f", "rawvideo", "-"]);
  const frameBytes = (WIDTH * HEIGHT * 3) / 2;
  const rawFrames = Array.from({ length: frames }, (_, i) =>
    raw.out.subarray(i * frameBytes, (i + 1) * frameBytes),
  );
  const results: FrameEncodingResult[] = [
    {
      encoding: "yuv420p raw",
      bytesPerFrame: frameBytes,
      producerCpuMsPerFrame: 0,
      consumerCpuMsPerFrame: 0,
    },
  ];
  for (const level of [1, 6]) {
    const packed = cpuMs(() => rawFrames.map((f) => gzipSync(f, { level })));
    const unpacked = cpuMs(() => packed.value.map((z) => gunzipSync(z)));
    results.push({
      encoding: `yuv420p + gzip ${level}${level === 6 ? " (kafkajs default)" : ""}`,
      bytesPerFrame: packed.value.reduce((n, z) => n + z.byteLength, 0) / frames,
      producerCpuMsPerFrame: packed.ms / frames,
      consumerCpuMsPerFrame: unpacked.ms / frames,
    });
  }
  for (const q of [3, 6]) {
    const jpeg = await ffmpegRun([...input, "-c:v", "mjpeg", "-q:v", String(q), "-f", "image2pipe", "-"]);
    const images = splitJpegs(jpeg.out);
    const before = process.cpuUsage();
    for (const image of images) await decodeImage(image);
    const d = process.cpuUsage(before);
    results.push({
      encoding: `JPEG from ffmpeg (mjpeg -q:v ${q})`,
      bytesPerFrame: jpeg.out.byteLength / images.length,
      producerCpuMsPerFrame: ((jpeg.cpuSeconds - raw.cpuSeconds) * 1000) / images.length,
      consumerCpuMsPerFrame: (d.user + d.system) / 1000 / images.length,
    });
  }
  return { source: path.basename(source), width: WIDTH, height: HEIGHT, frames, results };
}
