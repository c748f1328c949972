import { encodeFrameInPlace } from "../../lib/media/frame-pool.ts";
import type { Config } from "../../lib/config/index.ts";
import {
  CameraStatusContract,
  FrameContract,
  Topics,
  type CameraStatusMessage,
} from "../../lib/contracts/index.ts";
import {
  ffmpegReason,
  hwaccelFailure,
  outputSize,
  probeVideo,
  startDecoder,
  type DecodedFrame,
  type Decoder,
} from "../../lib/media/ffmpeg.ts";
import {
  CameraRecording,
  discardSession,
  RECORDABLE_CODECS,
  recordingOutput,
} from "../../lib/media/recording.ts";
import type { Emit } from "../../lib/runtime/stage.ts";
import type { CameraSpec } from "./camera.ts";
import { FILE_NOT_RECORDED, isHttpUrl, recordableUrl } from "../../lib/media/camera-url.ts";

export type CameraState = CameraStatusMessage["state"];
type Timing = Pick<
  Config["ingest"],
  | "stallTimeoutS"
  | "ioTimeoutS"
  | "backoffInitialMs"
  | "backoffMaxMs"
  | "killGraceMs"
  | "statusEveryS"
  | "decoderThreads"
>;

/** Failures no retry will fix: the camera goes to `error` and waits for an operator. */
const PERMANENT =
  /401|403|404|unauthori[sz]ed|forbidden|not found|no such file|protocol not found|invalid argument|option .* not found/i;

export interface CameraStatus {
  cameraId: string;
  state: CameraState;
  lastError: string | null;
  framesIn: number;
  framesDropped: number;
  framesUndecodable: number;
  reconnects: number;
  /** Cameras with `record.keep` set: whether their video is being recorded, and why not. */
  recording?: { on: boolean; reason: string | null };
}

/**
 * Runs one camera's decoder and keeps it running: reconnects with capped exponential backoff and jitter, treats
 * ffmpeg exiting 0 on a live stream as a disconnect, kills a stalled decoder (SIGTERM, then SIGKILL), and stops
 * for good only on failures no retry can fix (bad URL, refused credentials) or at the end of a file.
 */
export class CameraSupervisor {
  private status: CameraStatus;
  private stopped = false;
  private decoder: Decoder | undefined;
  private wake: (() => void) | undefined;
  private seq: number;
  private publishing = false;
  private newest: DecodedFrame | undefined;
  private publishDone: Promise<void> = Promise.resolve();
  private readonly live: boolean;
  /** Files decode faster than real time; their frames are stamped on the media clock from this instant. */
  private mediaStart = 0;
  /** The hardware decoder in use; cleared for good when it fails on this camera. */
  private hwaccel: string | undefined;
  private hwaccelFallbackReason: string | undefined;
  /** The rolling recording, for cameras with `record.keep` set. */
  readonly recording: CameraRecording | undefined;
  /** Why this camera is not recorded although asked to be (a file, a codec that cannot be copied). */
  private get recordOff(): string | undefined {
    return this.recording?.off;
  }

  private set recordOff(reason: string | undefined) {
    if (this.recording) this.recording.off = reason;
  }

  /** The name of the current connection's recording files (`recordingOutput`'s session). */
  private recordSession: string | undefined;

  constructor(
    readonly camera: CameraSpec,
    private readonly emit: (e: Emit) => Promise<void>,
    private readonly timing: Timing,
    private readonly clock: () => number = Date.now,
    private readonly random: () => number = Math.random,
    private readonly warn: (message: string) => void = (m) => process.stderr.write(`vigil: ${m}\n`),
  ) {
    this.hwaccel = camera.hwaccel;
    this.status = {
      cameraId: camera.id,
      state: "connecting",
      lastError: null,
      framesIn: 0,
      framesDropped: 0,
      framesUndecodable: 0,
      reconnects: 0,
    };
    this.live = recordableUrl(camera.url);
    if (camera.record) {
      this.recording = new CameraRecording(camera.record, clock);
      if (!this.live) this.recordOff = FILE_NOT_RECORDED;
    }
    // Sequence numbers start from the wall clock (µs), so frame ids stay unique across process restarts.
    this.seq = clock() * 1000;
  }

  /** Counters include what the running decoder has reported so far, so status events and snapshots agree. */
  snapshot(): CameraStatus {
    return {
      ...this.status,
      framesUndecodable: this.status.framesUndecodable + (this.decoder?.undecodable() ?? 0),
      ...(this.recording
        ? {
            recording: {
              on: !this.recordOff && this.status.state === "live",
              reason: this.recordOff ?? null,
            },
          }
        : {}),
    };
  }

  pid(): number | undefined {
    return this.decoder?.pid();
  }

  /** Why this camera decodes in software although `hwaccel` was asked for; undefined while it has not failed. */
  hwaccelFallback(): string | undefined {
    return this.hwaccelFallbackReason;
  }

  async run(): Promise<CameraStatus> {
    const pruner = this.recording && setInterval(() => this.prune(), this.recording.spec.segmentS * 1000);
    try {
      return await this.supervise();
    } finally {
      if (pruner) clearInterval(pruner);
    }
  }

  private prune() {
    try {
      this.recording?.prune();
    } catch (err) {
      this.warn(`camera ${this.camera.id}: cannot prune its recording: ${(err as Error).message}`);
    }
  }

  private async supervise(): Promise<CameraStatus> {
    let attempt = 0;
    while (!this.stopped) {
      await this.setState("connecting");
      let decoder: Decoder;
      try {
        decoder = await this.startDecoder();
      } catch (err) {
        // Files that cannot be probed are not going to become readable by waiting.
        await this.setState("error", (err as Error).message);
        return this.snapshot();
      }
      this.decoder = decoder;
      const outcome = await this.consume(decoder);
      const exit = await decoder.exited;
      this.status.framesUndecodable += decoder.undecodable();
      this.decoder = undefined;
      if (this.stopped) break;
      if (outcome.gotFrames) attempt = 0;
      // Its video cannot be recorded as it is: decoding goes on at once without the recording, and says why.
      if (outcome.restart) {
        await this.setState("connecting", this.recordOff ?? null);
        continue;
      }
      // A GPU decoder that cannot run here (no device, driver, or a stream NVDEC does not take) is not the
      // camera's fault: this camera goes on in software at once, and says why. The other cameras keep theirs.
      const hwFailure = this.hwaccel && !outcome.stalled ? hwaccelFailure(exit.stderr) : undefined;
      if (hwFailure) {
        this.hwaccelFallbackReason = `hwaccel ${this.hwaccel} failed (${hwFailure}); decoding in software`;
        this.hwaccel = undefined;
        this.warn(`camera ${this.camera.id}: ${this.hwaccelFallbackReason}`);
        await this.setState("connecting", this.hwaccelFallbackReason);
        continue;
      }
      if (!this.live && !this.camera.loop && exit.code === 0) {
        await this.publishDone;
        await this.setState("ended");
        return this.snapshot();
      }
      const reason = outcome.stalled
        ? `no frame for ${this.timing.stallTimeoutS} s`
        : exit.code === 0
          ? "stream ended (the server closed it)"
          : (ffmpegReason(exit.stderr) ?? `ffmpeg exited with ${exit.code ?? exit.signal}`);
      if (!outcome.stalled && exit.code !== 0 && PERMANENT.test(reason)) {
        await this.setState("error", reason);
        return this.snapshot();
      }
      this.status.reconnects++;
      await this.setState("backoff", reason);
      await this.sleep(this.backoffMs(attempt++));
    }
    return this.snapshot();
  }

  /** Stops the camera and resolves once its ffmpeg process is gone. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    const decoder = this.decoder;
    if (decoder) await this.terminate(decoder);
  }

  backoffMs(attempt: number): number {
    const base = Math.min(this.timing.backoffMaxMs, this.timing.backoffInitialMs * 2 ** attempt);
    // ±20% jitter: many cameras behind one failed switch must not reconnect in lockstep.
    return base * (0.8 + 0.4 * this.random());
  }

  private async startDecoder(): Promise<Decoder> {
    const c = this.camera;
    const input: string[] = [];
    if (/^rtsps?:/i.test(c.url))
      input.push("-rtsp_transport", c.transport, "-timeout", String(this.timing.ioTimeoutS * 1e6));
    else if (isHttpUrl(c.url)) input.push("-rw_timeout", String(this.timing.ioTimeoutS * 1e6));
    // Before the input, so it is the decoder's: one thread per camera measured 15 % less CPU a frame than
    // ffmpeg's automatic frame threading for 720p25 sampled at 5 fps on this machine (which had been the default
    // all along: the setting was read by bench ingest but never handed to the decoder).
    if (this.timing.decoderThreads > 0) input.push("-threads", String(this.timing.decoderThreads));
    if (this.live) {
      // Each connection records under its own session name, so a reconnect never overwrites what came before.
      this.recordSession = this.recording && !this.recordOff ? this.clock().toString(36) : undefined;
      return startDecoder(c.url, {
        fps: c.fps,
        width: c.width,
        height: c.height,
        letterbox: true,
        keyframesOnly: c.keyframesOnly,
        hwaccel: this.hwaccel,
        inputOptions: input,
        encoding: c.encoding,
        jpegQuality: c.jpegQuality,
        ...(this.recording && this.recordSession
          ? { record: recordingOutput(this.recording.spec, this.recordSession) }
          : {}),
      });
    }
    const probe = await probeVideo(c.url);
    this.mediaStart = this.clock();
    const size = outputSize(probe.width, probe.height, c.maxWidth);
    return startDecoder(c.url, {
      fps: c.fps,
      ...size,
      loop: c.loop,
      keyframesOnly: c.keyframesOnly,
      hwaccel: this.hwaccel,
      inputOptions: input,
      encoding: c.encoding,
      jpegQuality: c.jpegQuality,
    });
  }

  private async consume(
    decoder: Decoder,
  ): Promise<{ gotFrames: boolean; stalled: boolean; restart?: boolean }> {
    let lastFrameAt = this.clock();
    let lastStatusAt = 0;
    let stalled = false;
    let gotFrames = false;
    let codecChecked = false;
    // Time spent waiting for the pipeline (a file's frame held until the bus takes it, a broker away) is ours,
    // not the camera's: it must not count as a stall, or a file would restart from its beginning.
    let waitingOnPipeline = false;
    const watchdog = setInterval(() => {
      if (waitingOnPipeline) return;
      if (this.clock() - lastFrameAt > this.timing.stallTimeoutS * 1000 && !stalled) {
        stalled = true;
        void this.setState("stalled", `no frame for ${this.timing.stallTimeoutS} s`);
        void this.terminate(decoder);
      }
    }, 200);
    try {
      for await (const frame of decoder.frames) {
        if (this.stopped) break;
        lastFrameAt = this.clock();
        // ffmpeg names the input's codec on stderr before its first frame, though the pipes may be read in
        // either order: looked at on each frame until it is known.
        const codec = this.recording && !this.recordOff && !codecChecked ? decoder.inputCodec() : undefined;
        if (codec) {
          codecChecked = true;
          if (!RECORDABLE_CODECS.has(codec)) {
            this.recordOff = `its video is ${codec}: clips copy H.264 or H.265 as it arrives, and this would have to be re-encoded`;
            this.warn(`camera ${this.camera.id}: not recorded: ${this.recordOff}`);
            frame.release();
            await this.terminate(decoder);
            // What this connection wrote before its codec was known is not a clip anyone can play in a browser.
            if (this.recording && this.recordSession) discardSession(this.recording.spec, this.recordSession);
            return { gotFrames: true, stalled: false, restart: true };
          }
        }
        if (!gotFrames) {
          gotFrames = true;
          await this.setState("live");
          lastStatusAt = this.clock();
        }
        this.status.framesIn++;
        waitingOnPipeline = true;
        try {
          await this.deliver(frame);
          if (this.clock() - lastStatusAt > this.timing.statusEveryS * 1000) {
            lastStatusAt = this.clock();
            await this.report();
          }
        } finally {
          waitingOnPipeline = false;
          lastFrameAt = this.clock();
        }
      }
    } catch {
      // The pipe broke because the process died; the exit status says why.
    } finally {
      clearInterval(watchdog);
    }
    return { gotFrames, stalled };
  }

  /**
   * Files block ffmpeg until the pipeline takes each frame (nothing is lost). Live sources never block the
   * decoder: while a frame is being published, only the newest waits; older ones are dropped and counted.
   */
  private async deliver(frame: DecodedFrame) {
    if (!this.live) {
      await this.publish(frame);
      return;
    }
    if (this.publishing) {
      if (this.newest) {
        this.status.framesDropped++;
        this.newest.release();
      }
      this.newest = frame;
      return;
    }
    this.publishing = true;
    this.publishDone = (async () => {
      let next: DecodedFrame | undefined = frame;
      while (next) {
        await this.publish(next);
        next = this.newest;
        this.newest = undefined;
      }
      this.publishing = false;
    })();
  }

  private publish(frame: DecodedFrame) {
    const header = {
      cameraId: this.camera.id,
      seq: this.seq++,
      // Live: when the decoded frame reached Vigil (sender clocks are not trusted). Files: the media clock.
      captureTs: this.live
        ? frame.receivedAt
        : Math.round(this.mediaStart + (frame.index * 1000) / this.camera.fps),
      width: frame.width,
      height: frame.height,
      format: frame.format,
      live: this.live,
    };
    // A raw frame is published from the slot the decoder wrote it into, and goes back to the decoder once the
    // bus is done with it (every consumer committed it): no copy of the pixels anywhere on the way.
    if (frame.slot) {
      const value = encodeFrameInPlace(frame.slot, header);
      return this.emit({ topic: Topics.frames, key: this.camera.id, value, release: frame.release });
    }
    const value = FrameContract.encode({ ...header, image: frame.data });
    frame.release();
    return this.emit({ topic: Topics.frames, key: this.camera.id, value });
  }

  private async terminate(decoder: Decoder) {
    decoder.kill("SIGTERM");
    const timer = setTimeout(() => decoder.kill("SIGKILL"), this.timing.killGraceMs);
    await decoder.exited;
    clearTimeout(timer);
  }

  private sleep(ms: number) {
    return new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  private async setState(state: CameraState, lastError: string | null = null) {
    this.status.state = state;
    if (lastError !== null || state === "live") this.status.lastError = lastError;
    await this.report();
  }

  private report() {
    return this.emit({
      topic: Topics.cameraStatus,
      key: this.camera.id,
      value: CameraStatusContract.encode({ ...this.snapshot(), ts: this.clock() }),
    });
  }
}
