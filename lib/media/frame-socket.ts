import { rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import type { FramePool, FrameSlot } from "./frame-pool.ts";

let sockets = 0;

/**
 * Where one decoder's ffmpeg listens for its raw frames: a Unix socket, not its stdout. On a socket Node can read
 * straight into the frame's slot (`onread` with a buffer of our choosing); a pipe gives 64 KiB Buffers that are
 * copied into the slot and then collected: 22 allocations and a copy of every frame, which at 14 cameras kept
 * V8's collector threads busier than the main thread's own work (measured on 500 720p frames: 0.80 against
 * 1.25 ms of CPU a frame).
 */
export function frameSocketPath(): string {
  const at = path.join(os.tmpdir(), `vigil-frames-${process.pid}-${++sockets}.sock`);
  // Left by an earlier process of the same pid that died before cleaning up: ffmpeg could not bind over it.
  rmSync(at, { force: true });
  return at;
}

/** ffmpeg's output options that make it listen on `socketPath` for the one reader (unix protocol, -listen 1). */
export function frameSocketOutput(socketPath: string): { target: string; options: string[] } {
  return { target: `unix:${socketPath}`, options: ["-listen", "1"] };
}

/**
 * Reads fixed-size frames from the ffmpeg listening at `socketPath` into slots of `pool`, each byte written once,
 * where it stays. The path is the caller's to remove once ffmpeg has exited. ffmpeg listens only once it has opened its input (seconds for a camera), so the connection is
 * retried until it is taken or `exited` settles. At most one whole frame waits for the consumer; beyond that the
 * socket is paused, so ffmpeg blocks as it did on a full pipe.
 */
export async function* readFrameSocket(
  socketPath: string,
  pool: FramePool,
  frameBytes: number,
  exited: Promise<unknown>,
): AsyncGenerator<FrameSlot> {
  let over = false;
  void exited.finally(() => (over = true));
  const ready: FrameSlot[] = [];
  let slot = pool.acquire();
  let filled = 0;
  let ended = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  const onread = {
    // Node asks for the next read's buffer after each read: the rest of the frame being filled.
    buffer: () => slot.pixels.subarray(filled),
    callback: (n: number) => {
      filled += n;
      if (filled < frameBytes) return true;
      ready.push(slot);
      slot = pool.acquire();
      filled = 0;
      notify();
      // One frame waiting is enough: the rest waits in ffmpeg, which then blocks.
      return false;
    },
  };
  const socket = await connectWhenListening(socketPath, onread, () => over);
  try {
    if (!socket) return;
    socket.on("close", () => {
      ended = true;
      notify();
    });
    // A reset connection ends the frames as a closed one does; ffmpeg's exit says why.
    socket.on("error", () => {});
    for (;;) {
      const next = ready.shift();
      if (next) {
        socket.resume();
        yield next;
        continue;
      }
      if (ended) return;
      await new Promise<void>((r) => (wake = r));
    }
  } finally {
    slot.release();
    for (const s of ready) s.release();
    socket?.destroy();
  }
}

/** Connects to `socketPath` reading through `onread`, retrying while nobody listens there yet. */
async function connectWhenListening(
  socketPath: string,
  onread: { buffer: () => Uint8Array; callback: (bytes: number) => boolean },
  gaveUp: () => boolean,
): Promise<net.Socket | undefined> {
  for (let delay = 10; ; delay = Math.min(200, delay * 2)) {
    if (gaveUp()) return undefined;
    const socket = await new Promise<net.Socket | undefined>((resolve) => {
      const s = net.connect({ path: socketPath, onread });
      s.once("connect", () => {
        s.removeAllListeners("error");
        resolve(s);
      });
      s.once("error", () => resolve(undefined));
    });
    if (socket) return socket;
    await new Promise((r) => setTimeout(r, delay));
  }
}
