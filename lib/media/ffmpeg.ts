import { FramePool, type FrameSlot } from "./frame-pool.ts";
import { frameSocketOutput, frameSocketPath, readFrameSocket } from "./frame-socket.ts";
import ffmpeg from "fluent-ffmpeg";
import type { ChildProcess } from "node:child_process";
import { rm } from "node:fs/promises";
import { PassThrough } from "node:stream";
import { InputCodecReader } from "./recording.ts";
import { yuv420Bytes } from "../vision/pixels/yuv.ts";

export class VideoSourceError extends Error {
  override name = "VideoSourceError";
}

export interface ProbeResult {
  width: number;
  height: number;
  fps: number | undefined;
  durationS: number | undefined;
}

/** Reads a file's video geometry with ffprobe; a clear error when it is not a video at all. */
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
  /**
   * Letterbox into width×height whatever the source's size: the output geometry then survives a camera that
   * changes resolution mid-stream (ffmpeg reconfigures its scaler, our frame size stays put).
   */
  letterbox?: boolean;
  loop?: boolean;
  /** Decode keyframes only: a fraction of the CPU for a frame every GOP. */
  keyframesOnly?: boolean;
  /**
   * ffmpeg `-hwaccel` method. `cuda` decodes on NVDEC and keeps frames on the GPU through the rate filter and
   * scale_cuda, so only the sampled, already scaled frames are copied to memory; other methods decode on their
   * device and let ffmpeg download every frame before the CPU scaler.
   */
  hwaccel?: string;
  inputOptions?: string[];
  /** Raw yuv420p (default), or JPEG from ffmpeg's mjpeg encoder at `jpegQuality` (2 best … 31). */
  encoding?: "yuv420p" | "jpeg";
  jpegQuality?: number;
  /** A second output of the same input: the camera's rolling recording (recordingOutput). */
  record?: { target: string; options: string[] };
}

export interface DecodedFrame {
  index: number;
  width: number;
  height: number;
  /** Planar yuv420p (see lib/vision/yuv.ts): Y, then U and V at half size; or one baseline JPEG. */
  format: "yuv420p" | "jpeg";
  data: Uint8Array;
  /** Wall-clock ms when the decoded frame reached Vigil. */
  receivedAt: number;
  /**
   * Hands `data` back for the decoder's next frame, once nothing reads it any more (it has been copied into a
   * message, or dropped). Optional: a frame never released is simply collected.
   */
  release(): void;
  /**
   * Raw frames: the pooled slot `data` lies in, with room for a message header in front, so the frame can be
   * published without a copy (encodeFrameInPlace); its release is `release`.
   */
  slot?: FrameSlot;
}

export interface DecoderExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last stderr lines, for the camera's error message. */
  stderr: string[];
}

/** ffmpeg's stderr lines that mean a packet or frame could not be decoded (counted, never fatal). */
const UNDECODABLE =
  /error while decoding|corrupt|concealing|invalid nal|missing picture|decode_slice_header error|no frame!/i;

/**
 * ffmpeg's stderr lines that mean the hardware decoder, not the source, failed: no driver or device, a codec or
 * profile the decoder does not take (10-bit or 4:4:4 H.264 on NVDEC), or GPU frames a filter could not take.
 */
const HWACCEL_FAILURE =
  /device creation failed|no device available for decoder|device setup failed|hwaccel initiali[sz]ation returned error|failed setup for format|cannot load libcuda|could not dynamically load cuda|cuda_error|cuvid|nvdec|hw_frames_ctx|hwdownload|scale_cuda|impossible to convert between the formats/i;

/** The stderr line that shows the hardware decoder failed, if one does. */
export function hwaccelFailure(lines: string[]): string | undefined {
  return lines.find((l) => HWACCEL_FAILURE.test(l))?.trim();
}

const EOI = Buffer.from([0xff, 0xd9]);

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

export interface Decoder {
  frames: AsyncGenerator<DecodedFrame>;
  /** Resolves when the ffmpeg process has exited, however it ended. */
  exited: Promise<DecoderExit>;
  pid(): number | undefined;
  kill(signal: NodeJS.Signals): void;
  /** Undecodable packets/frames ffmpeg reported so far. */
  undecodable(): number;
  /** The input's video codec, once ffmpeg has opened it. */
  inputCodec(): string | undefined;
}

/**
 * Starts ffmpeg decoding a source to yuv420p frames at a fixed rate and size. The async iterator applies
 * backpressure (ffmpeg blocks on its output when the consumer is behind). Frames stay in the decoder's own
 * colour format: converting 720p to BGR in ffmpeg costs more than decoding the 4 skipped frames in between,
 * and doubles the bytes every later step copies.
 */
export function startDecoder(url: string, options: DecodeOptions): Decoder {
  // 4:2:0 chroma is subsampled by two in both directions.
  const width = options.width & ~1;
  const height = options.height & ~1;
  if (width < 2 || height < 2)
    throw new VideoSourceError(`cannot decode to ${options.width}×${options.height}`);
  const frameBytes = yuv420Bytes(width, height);
  const pad = `pad=${width}:${height}:(ow-iw)/2:(oh-ih)/2`;
  const onGpu = options.hwaccel === "cuda";
  const jpeg = options.encoding === "jpeg";
  // On the GPU: scale_cuda writes yuv420p, so the download is the final frame and the CPU only pads (a copy).
  // ffmpeg 5.1 has no pad_cuda; padding after the download costs one memcpy of the scaled frame.
  const scale = onGpu
    ? options.letterbox
      ? `scale_cuda=${width}:${height}:force_original_aspect_ratio=decrease:force_divisible_by=2:format=yuv420p,hwdownload,format=yuv420p,${pad}`
      : `scale_cuda=${width}:${height}:format=yuv420p,hwdownload,format=yuv420p`
    : options.letterbox
      ? `scale=${width}:${height}:force_original_aspect_ratio=decrease,${pad}`
      : `scale=${width}:${height}`;
  const command = ffmpeg(url).inputOptions([
    "-hide_banner",
    ...(options.loop ? ["-stream_loop", "-1"] : []),
    ...(options.keyframesOnly ? ["-skip_frame", "nokey"] : []),
    ...(options.hwaccel ? ["-hwaccel", options.hwaccel] : []),
    ...(onGpu ? ["-hwaccel_output_format", "cuda"] : []),
    ...(options.inputOptions ?? []),
  ]);
  // The frames' output first: options given before an output belong to it, and a second output (the recording)
  // takes its own. Raw frames come through a Unix socket read straight into their slots (frame-socket.ts); JPEGs,
  // a few dozen KiB, through stdout.
  const stream = jpeg ? new PassThrough() : undefined;
  const socketPath = jpeg ? undefined : frameSocketPath();
  const socketOutput = socketPath ? frameSocketOutput(socketPath) : undefined;
  command
    .output(socketOutput?.target ?? stream!)
    // Keyframes arrive once per GOP; the fps filter would duplicate them up to the rate, so pass them through.
    .outputOptions([
      "-an",
      "-vf",
      options.keyframesOnly ? scale : `fps=${options.fps},${scale}`,
      ...(options.keyframesOnly ? ["-vsync", "passthrough"] : []),
      ...(jpeg
        ? ["-c:v", "mjpeg", "-q:v", String(options.jpegQuality ?? 3), "-f", "image2pipe"]
        : ["-pix_fmt", "yuv420p", "-f", "rawvideo", ...socketOutput!.options]),
    ]);
  if (options.record) command.output(options.record.target).outputOptions(options.record.options);
  const stderr: string[] = [];
  const codec = new InputCodecReader();
  let undecodable = 0;
  let proc: ChildProcess | undefined;
  let resolveExit!: (e: DecoderExit) => void;
  const exited = new Promise<DecoderExit>((r) => (resolveExit = r));
  // The socket's path goes with ffmpeg, whether or not its frames were read.
  if (socketPath) void exited.then(() => rm(socketPath, { force: true })).catch(() => {});
  command.on("start", () => {
    proc = (command as unknown as { ffmpegProc?: ChildProcess }).ffmpegProc;
    if (!proc) return;
    proc.once("exit", (code, signal) => resolveExit({ code, signal, stderr: stderr.slice(-15) }));
  });
  command.on("stderr", (line: string) => {
    if (UNDECODABLE.test(line)) undecodable++;
    codec.line(line);
    stderr.push(line);
    if (stderr.length > 50) stderr.shift();
  });
  // fluent-ffmpeg reports non-zero exits and spawn failures here; the exit promise carries the details.
  command.on("error", (err: Error) => {
    if (!proc) resolveExit({ code: null, signal: null, stderr: [err.message] });
  });
  command.run();
  stream?.on("error", () => {});

  // Released frame slots, reused: at 40 frames a second, fresh 1.4 MB buffers keep V8's collector busy. Each
  // is shared memory with header room, so the frame goes on to the bus and a worker thread where it lies. Up to
  // 32 idle slots are kept (more than a camera ever has in flight), so slots are not freed and made again:
  // that churn of 1.4 MB native blocks fragments the allocator's heap and grows the process over hours.
  const pool = new FramePool(frameBytes, 32);

  /** JPEGs from image2pipe, one after another: each ends at its EOI marker (FF D9, never inside coded data). */
  async function* jpegFrames(): AsyncGenerator<DecodedFrame> {
    let pending = Buffer.alloc(0);
    let index = 0;
    for await (const chunk of stream!) {
      pending = pending.length ? Buffer.concat([pending, chunk as Buffer]) : (chunk as Buffer);
      for (let end = pending.indexOf(EOI, 2); end >= 0; end = pending.indexOf(EOI, 2)) {
        const data = new Uint8Array(pending.subarray(0, end + 2));
        pending = pending.subarray(end + 2);
        yield {
          index: index++,
          width,
          height,
          format: "jpeg",
          data,
          receivedAt: Date.now(),
          release: () => {},
        };
      }
    }
  }

  async function* frames(): AsyncGenerator<DecodedFrame> {
    let index = 0;
    for await (const slot of readFrameSocket(socketPath!, pool, frameBytes, exited)) {
      yield {
        index: index++,
        width,
        height,
        format: "yuv420p",
        data: slot.pixels,
        receivedAt: Date.now(),
        release: slot.release,
        slot,
      };
    }
  }

  return {
    frames: jpeg ? jpegFrames() : frames(),
    exited,
    pid: () => proc?.pid,
    kill: (signal) => {
      if (proc && proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    },
    undecodable: () => undecodable,
    inputCodec: () => codec.codec,
  };
}

/** The most telling of ffmpeg's last stderr lines, for an operator-facing reason. */
export function ffmpegReason(lines: string[]): string | undefined {
  const telling = [...lines]
    .reverse()
    .find((l) =>
      /error|invalid|no such|failed|refused|denied|unauthori[sz]ed|not found|timed out|forbidden/i.test(l),
    );
  return (telling ?? lines.at(-1))?.trim();
}
