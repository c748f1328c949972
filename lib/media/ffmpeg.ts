import ffmpeg from "fluent-ffmpeg";
import type { Readable } from "node:stream";

export class VideoSourceError extends Error {
  override name = "VideoSourceError";
}

export interface ProbeResult {
  width: number;
  height: number;
  fps: number | undefined;
  durationS: number | undefined;
}

/** Reads a source's video geometry with ffprobe; a clear error when it is not a video at all. */
export function probeVideo(url: string, timeoutMs = 15_000): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new VideoSourceError(`${url}: ffprobe gave no answer in ${timeoutMs} ms`)),
      timeoutMs,
    );
    ffmpeg.ffprobe(url, (err, data) => {
      clearTimeout(timer);
      if (err) {
        const detail =
          String((err as Error).message)
            .split("\n")
            .filter((l) => l.trim())
            .slice(-1)[0] ?? "unknown error";
        reject(new VideoSourceError(`cannot read video ${url}: ${detail}`));
        return;
      }
      const stream = data.streams.find((s) => s.codec_type === "video" && s.width && s.height);
      if (!stream) {
        reject(new VideoSourceError(`cannot read video ${url}: it has no video stream`));
        return;
      }
      const [num, den] = String(stream.avg_frame_rate ?? stream.r_frame_rate ?? "")
        .split("/")
        .map(Number);
      const duration = Number(data.format.duration);
      resolve({
        width: stream.width!,
        height: stream.height!,
        fps: num && den ? num / den : undefined,
        durationS: Number.isFinite(duration) ? duration : undefined,
      });
    });
  });
}

export interface DecodeOptions {
  /** Frames per second to sample; done in ffmpeg's filter graph, far cheaper than dropping decoded frames. */
  fps: number;
  width: number;
  height: number;
  loop?: boolean;
  inputOptions?: string[];
}

export interface DecodedFrame {
  index: number;
  width: number;
  height: number;
  data: Uint8Array;
}

/** Output size no wider than `maxWidth`, aspect kept, both sides even (what H.264 sources and scalers like). */
export function outputSize(
  width: number,
  height: number,
  maxWidth: number,
): { width: number; height: number } {
  const scale = Math.min(1, maxWidth / width);
  const even = (v: number) => Math.max(2, 2 * Math.round((v * scale) / 2));
  return { width: even(width), height: even(height) };
}

/**
 * Decodes a source to packed BGR frames at a fixed rate and size. The async iterator applies backpressure
 * (ffmpeg blocks on its pipe when the consumer is behind); `stop()` kills the decoder.
 */
export function decodeFrames(url: string, options: DecodeOptions) {
  const frameBytes = options.width * options.height * 3;
  const command = ffmpeg(url)
    .inputOptions([...(options.loop ? ["-stream_loop", "-1"] : []), ...(options.inputOptions ?? [])])
    .outputOptions([
      "-an",
      "-vf",
      `fps=${options.fps},scale=${options.width}:${options.height}`,
      "-pix_fmt",
      "bgr24",
      "-f",
      "rawvideo",
    ]);
  let failure: Error | undefined;
  let stopped = false;
  const stderrTail: string[] = [];
  command.on("stderr", (line: string) => {
    stderrTail.push(line);
    if (stderrTail.length > 20) stderrTail.shift();
  });
  command.on("error", (err: Error) => {
    if (!stopped)
      failure = new VideoSourceError(`decoding ${url} failed: ${lastMeaningful(stderrTail) ?? err.message}`);
  });
  const stream = command.pipe() as Readable;

  async function* frames(): AsyncGenerator<DecodedFrame> {
    let pending = Buffer.alloc(0);
    let index = 0;
    for await (const chunk of stream) {
      pending = pending.length === 0 ? (chunk as Buffer) : Buffer.concat([pending, chunk as Buffer]);
      while (pending.length >= frameBytes) {
        // Copy out: the frame outlives the pipe's buffer and travels on the bus.
        const data = new Uint8Array(pending.subarray(0, frameBytes));
        pending = pending.subarray(frameBytes);
        yield { index: index++, width: options.width, height: options.height, data };
      }
    }
    // Let the 'error' event, which fires after the pipe ends, land before deciding how decoding ended.
    await new Promise((r) => setImmediate(r));
    if (failure) throw failure;
  }

  return {
    frames: frames(),
    stop() {
      stopped = true;
      command.kill("SIGKILL");
    },
  };
}

function lastMeaningful(lines: string[]): string | undefined {
  return [...lines]
    .reverse()
    .find((l) => /error|invalid|no such|failed|refused|denied/i.test(l))
    ?.trim();
}
