import { readFileSync } from "node:fs";
import path from "node:path";
import type { Bus, OutRecord } from "../../lib/bus/index.ts";
import type { Config } from "../../lib/config/index.ts";
import { FrameContract, Topics, type FrameMessage } from "../../lib/contracts/index.ts";
import { startDecoder } from "../../lib/media/ffmpeg.ts";
import { FramePool, encodeFrameInPlace } from "../../lib/media/frame-pool.ts";
import { benchFaceVideo } from "../../lib/media/sample-media.ts";
import { tempDirFor } from "../../lib/util/temp.ts";
import { yuv420Bytes, type Yuv420Image } from "../../lib/vision/pixels/yuv.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Frames as ingest hands them to detection: yuv420p, from a raw file or decoded here with ffmpeg. */
export async function loadBenchFrames(
  config: Config,
  options: { frames?: string; video?: string; width: number; height: number; count?: number },
): Promise<{ frames: Yuv420Image[]; source: string }> {
  const { width, height } = options;
  if (options.frames) {
    const bytes = readFileSync(options.frames);
    const size = yuv420Bytes(width, height);
    if (bytes.length % size !== 0 || bytes.length === 0) {
      throw new Error(
        `${options.frames}: ${bytes.length} bytes is not a whole number of ${width}×${height} frames`,
      );
    }
    const frames: Yuv420Image[] = [];
    for (let o = 0; o < bytes.length; o += size) {
      frames.push({ format: "yuv420p", width, height, data: new Uint8Array(bytes.subarray(o, o + size)) });
    }
    return { frames, source: `${path.basename(options.frames)} (pre-decoded yuv420p)` };
  }
  const video = await benchFaceVideo(config, tempDirFor(config, "bench-frames"), options.video);
  const decoder = startDecoder(video, { fps: 5, width, height, letterbox: true });
  const frames: Yuv420Image[] = [];
  for await (const f of decoder.frames) {
    frames.push({ format: "yuv420p", width: f.width, height: f.height, data: new Uint8Array(f.data) });
    f.release();
    if (frames.length >= (options.count ?? 40)) break;
  }
  decoder.kill("SIGTERM");
  if (frames.length === 0) throw new Error(`${video}: ffmpeg gave no frames`);
  return { frames, source: `${path.basename(video)} decoded by ffmpeg at 5 fps` };
}

/** What the cameras offered inside the measuring window, and what they dropped there because the bus was busy. */
export interface WindowCounts {
  offered: number;
  dropped: number;
}

/**
 * Pre-decoded frames published as live cameras at `fps`, the way the camera supervisor publishes them: capture
 * stamped on arrival, each frame copied once into a pooled slot (as ffmpeg's pipe is read into one), and while a
 * camera's frame is still being published the next one is dropped (live sources never queue).
 */
export class LiveCameras {
  /** Capture times inside [start, end) count towards the window. */
  readonly window = { start: Infinity, end: Infinity };
  private state: { busy: boolean; offered: number; dropped: number }[] = [];
  private running = false;
  private seq = Date.now() * 1000;
  private readonly pool: FramePool;

  constructor(
    private readonly bus: Bus,
    private readonly frames: Yuv420Image[],
    private readonly fps = 5,
    /** The frames as JPEG (what ingest publishes on Kafka by default): published as they are, no slot. */
    private readonly jpegs?: Uint8Array[],
    /**
     * `frame`: every frame is copied into its slot, as ingest reads each one from its decoder. `slot`: a slot is
     * filled once, when it is made, and then published with whatever frame it holds: for measuring a stage that
     * receives frames already in memory, without ingest's copy in its figures.
     */
    private readonly copy: "frame" | "slot" = "frame",
  ) {
    this.pool = new FramePool(frames[0]!.data.byteLength);
  }

  /** Starts `n` cameras, evenly phased over one frame period; the returned function stops them. */
  run(n: number): () => Promise<void> {
    this.running = true;
    this.state = [];
    const periodMs = 1000 / this.fps;
    const t0 = performance.now();
    const timers: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      const state = { busy: false, offered: 0, dropped: 0 };
      this.state.push(state);
      const phase = (i * periodMs) / n;
      // Each camera starts at its own point of the clip, as independent cameras would be.
      let frame = (i * 7) % this.frames.length;
      timers.push(
        (async () => {
          for (let k = 0; this.running; k++) {
            const wait = t0 + phase + k * periodMs - performance.now();
            if (wait > 0) await sleep(wait);
            if (!this.running) break;
            const captureTs = Date.now();
            const inWindow = captureTs >= this.window.start && captureTs < this.window.end;
            if (inWindow) state.offered++;
            const image = this.frames[frame]!;
            frame = (frame + 1) % this.frames.length;
            if (state.busy) {
              if (inWindow) state.dropped++;
              continue;
            }
            state.busy = true;
            const header = {
              cameraId: `cam${i + 1}`,
              seq: this.seq++,
              captureTs,
              width: image.width,
              height: image.height,
              live: true,
            };
            const jpeg = this.jpegs?.[(frame + this.frames.length - 1) % this.frames.length];
            const record: OutRecord = jpeg
              ? {
                  key: header.cameraId,
                  value: FrameContract.encode({ ...header, format: "jpeg", image: jpeg }),
                }
              : this.inSlot(header, image);
            void this.bus
              .publish(Topics.frames, [record])
              .catch(() => record.release?.())
              .finally(() => (state.busy = false));
          }
        })(),
      );
    }
    return async () => {
      this.running = false;
      await Promise.all(timers);
    };
  }

  /** The frame copied into a pooled slot, as ingest's decoder writes it there; the bus releases the slot. */
  private inSlot(header: Omit<FrameMessage, "image" | "format">, image: Yuv420Image) {
    const made = this.pool.size;
    const slot = this.pool.acquire();
    if (this.copy === "frame" || this.pool.size > made) slot.pixels.set(image.data);
    const value = encodeFrameInPlace(slot, { ...header, format: "yuv420p" });
    return { key: header.cameraId, value, release: slot.release };
  }

  counts(): WindowCounts {
    return {
      offered: this.state.reduce((s, c) => s + c.offered, 0),
      dropped: this.state.reduce((s, c) => s + c.dropped, 0),
    };
  }

  /** Frame slots ever made (the pool grows only while every slot is in use). */
  get slots(): number {
    return this.pool.size;
  }
}

/**
 * The largest camera count whose step passes: doubling from `start` until a step fails, then bisecting to
 * within an eighth of the last pass, inside `budgetS`. `step` reports whether that count passed and whether the
 * pipeline drained after it (a step that leaves a backlog would start the next one behind: the ramp stops).
 */
export async function rampCameras(
  start: number,
  budgetS: number,
  stepS: number,
  step: (cameras: number) => Promise<{ pass: boolean; drained: boolean }>,
): Promise<{ passN: number; failN: number; drained: boolean; note: string }> {
  const deadline = Date.now() + budgetS * 1000;
  const stepCost = (stepS + 5) * 1000;
  let passN = 0;
  let failN = Infinity;
  let drained = true;
  for (let n = start; drained && Date.now() + stepCost < deadline; n *= 2) {
    const r = await step(n);
    drained = r.drained;
    if (r.pass) passN = n;
    else {
      failN = n;
      break;
    }
  }
  while (
    drained &&
    Number.isFinite(failN) &&
    failN - passN > Math.max(1, passN / 8) &&
    Date.now() + stepCost < deadline
  ) {
    const n = Math.round((passN + failN) / 2);
    const r = await step(n);
    drained = r.drained;
    if (r.pass) passN = n;
    else failN = n;
  }
  const note =
    (Number.isFinite(failN)
      ? `passes at ${passN}, fails at ${failN}`
      : `passed every count tried up to ${passN}: the time budget, not the pipeline, stopped the ramp`) +
    (drained ? "" : "; the pipeline had not drained 30 s after the last step, so the ramp stopped there");
  return { passN, failN, drained, note };
}

/** Waits for the bus to drain, 30 s at most: false when it did not. */
export function drainWithin(drain: () => Promise<void>, ms = 30_000): Promise<boolean> {
  return Promise.race([drain().then(() => true), sleep(ms).then(() => false)]);
}
