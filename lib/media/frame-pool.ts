import { FrameContract, type FrameMessage } from "../contracts/index.ts";

/**
 * Room before a frame's pixels for the message's preamble and header, so the encoded message is the slot
 * itself: the pixels are never copied after the decoder wrote them. A frame's header is about 200 bytes of
 * JSON; the contract caps a camera id at 200 characters, at most 1,200 bytes even if every one is escaped.
 */
export const FRAME_HEADER_ROOM = 2048;

/** One frame's memory: shared, so a worker thread reads the pixels where they lie. */
export interface FrameSlot {
  /** The whole slot: header room, then the pixels. */
  readonly bytes: Uint8Array;
  /** Where the decoder writes the frame. */
  readonly pixels: Uint8Array;
  /** Gives the slot back; idempotent. Called by the bus once no consumer needs the record any more. */
  readonly release: () => void;
}

/**
 * Frame-sized SharedArrayBuffers, reused. A 720p frame is 1.4 MB; allocating and zeroing one per frame at
 * hundreds of frames a second is most of what the frame path would otherwise cost. The pool grows only while
 * every slot is in use (a slow consumer holds them), and keeps at most `maxFree` idle slots.
 */
export class FramePool {
  private free: SharedArrayBuffer[] = [];
  private made = 0;

  constructor(
    readonly pixelBytes: number,
    private readonly maxFree = 64,
  ) {}

  acquire(): FrameSlot {
    const buffer = this.free.pop() ?? this.make();
    let released = false;
    return {
      bytes: new Uint8Array(buffer),
      pixels: new Uint8Array(buffer, FRAME_HEADER_ROOM, this.pixelBytes),
      release: () => {
        if (released) return;
        released = true;
        if (this.free.length < this.maxFree) this.free.push(buffer);
      },
    };
  }

  /** Slots made so far (in use or idle). */
  get size(): number {
    return this.made;
  }

  private make(): SharedArrayBuffer {
    this.made++;
    return new SharedArrayBuffer(FRAME_HEADER_ROOM + this.pixelBytes);
  }
}

/** A frame message whose pixels are already in `slot`: the header is written in front of them. */
export function encodeFrameInPlace(slot: FrameSlot, header: Omit<FrameMessage, "image">): Uint8Array {
  return FrameContract.encodeInPlace({ ...header, image: slot.pixels } as FrameMessage, slot.bytes);
}
