import {
  CameraStatusContract,
  FrameContract,
  Topics,
  type CameraStatusMessage,
} from "../../lib/contracts/index.ts";
import { decodeFrames, outputSize, probeVideo } from "../../lib/media/ffmpeg.ts";
import type { Emit } from "../../lib/runtime/stage.ts";

export interface CameraSpec {
  id: string;
  url: string;
  fps: number;
  maxWidth: number;
  loop?: boolean;
}

export interface ReadResult {
  frames: number;
  state: "ended" | "error";
  error?: string;
}

/**
 * Reads one camera (here: a file or URL ffmpeg can open) into frame messages, stamped with a monotonic
 * sequence number and capture time, and reports its state on the camera-status topic.
 */
export async function readCamera(
  camera: CameraSpec,
  emit: (e: Emit) => Promise<void>,
  signal?: AbortSignal,
  clock: () => number = Date.now,
): Promise<ReadResult> {
  const status = { framesIn: 0, framesDropped: 0, reconnects: 0 };
  const report = (state: CameraStatusMessage["state"], lastError: string | null = null) =>
    emit({
      topic: Topics.cameraStatus,
      key: camera.id,
      value: CameraStatusContract.encode({ cameraId: camera.id, state, ts: clock(), lastError, ...status }),
    });
  await report("connecting");
  let decoder: ReturnType<typeof decodeFrames> | undefined;
  const onAbort = () => decoder?.stop();
  signal?.addEventListener("abort", onAbort);
  try {
    const probe = await probeVideo(camera.url);
    const size = outputSize(probe.width, probe.height, camera.maxWidth);
    decoder = decodeFrames(camera.url, { fps: camera.fps, ...size, loop: camera.loop });
    // Files decode faster than real time; their frames are stamped on the media clock from the start.
    const started = clock();
    let live = false;
    for await (const frame of decoder.frames) {
      if (signal?.aborted) break;
      if (!live) {
        live = true;
        await report("live");
      }
      status.framesIn++;
      await emit({
        topic: Topics.frames,
        key: camera.id,
        value: FrameContract.encode({
          cameraId: camera.id,
          seq: frame.index,
          captureTs: Math.round(started + (frame.index * 1000) / camera.fps),
          width: frame.width,
          height: frame.height,
          format: "bgr24",
          image: frame.data,
        }),
      });
    }
    await report("ended");
    return { frames: status.framesIn, state: "ended" };
  } catch (err) {
    const message = (err as Error).message;
    await report("error", message);
    return { frames: status.framesIn, state: "error", error: message };
  } finally {
    signal?.removeEventListener("abort", onAbort);
    decoder?.stop();
  }
}
