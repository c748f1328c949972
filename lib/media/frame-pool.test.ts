import { describe, expect, it } from "vitest";
import { FrameContract } from "../contracts/index.ts";
import { FRAME_HEADER_ROOM, FramePool, encodeFrameInPlace } from "./frame-pool.ts";

describe("FramePool", () => {
  it("hands a released slot out again, and makes a new one only while every slot is in use", () => {
    const pool = new FramePool(16);
    const a = pool.acquire();
    const b = pool.acquire();
    expect(pool.size).toBe(2);
    expect(a.pixels.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(a.pixels.byteOffset).toBe(FRAME_HEADER_ROOM);
    a.release();
    a.release(); // twice is once: the slot must not be handed to two holders
    const c = pool.acquire();
    const d = pool.acquire();
    expect(c.pixels.buffer).toBe(a.pixels.buffer);
    expect(d.pixels.buffer).not.toBe(a.pixels.buffer);
    expect(d.pixels.buffer).not.toBe(b.pixels.buffer);
    expect(pool.size).toBe(3);
  });

  it("publishes a frame from its slot: the message views the decoder's pixels", () => {
    const pool = new FramePool(6);
    const slot = pool.acquire();
    slot.pixels.set([1, 2, 3, 4, 5, 6]);
    const bytes = encodeFrameInPlace(slot, {
      cameraId: "door",
      seq: 7,
      captureTs: 1_700_000_000_000,
      width: 2,
      height: 2,
      format: "yuv420p",
      live: true,
    });
    expect(bytes.buffer).toBe(slot.bytes.buffer);
    const frame = FrameContract.decode(bytes);
    expect(frame).toMatchObject({ cameraId: "door", seq: 7, width: 2, height: 2 });
    expect(Array.from(frame.image)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(frame.image.byteOffset).toBe(FRAME_HEADER_ROOM);
  });
});
