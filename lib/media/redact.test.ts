import { describe, expect, it } from "vitest";
import { FaceTracks, maskFace } from "./redact.ts";

const box = (x: number) => ({ x, y: 100, width: 40, height: 40 });

describe("which faces a redacted frame masks", () => {
  it("masks a face the detector missed for a few frames where its track puts it, and a lost one a while longer", () => {
    const tracks = new FaceTracks(4);
    tracks.observe(0, [box(100)]);
    // Frames 1–3: the detector blinks; frame 4 finds the face again, further right.
    tracks.observe(4, [box(110)]);
    expect(tracks.masksAt(2)).toEqual([{ box: box(105), carried: true }]);
    expect(tracks.masksAt(4)).toEqual([{ box: box(110), carried: false }]);
    // Lost for good after frame 4: held where it was last seen for the window, then let go.
    expect(tracks.masksAt(8)).toEqual([{ box: box(110), carried: true }]);
    expect(tracks.masksAt(9)).toEqual([]);
  });

  it("never masks the person's own track, and keeps two faces apart by overlap", () => {
    const tracks = new FaceTracks(4);
    const [her, other] = tracks.observe(0, [box(100), box(400)]);
    her!.person = true;
    const next = tracks.observe(1, [box(405), box(102)]);
    expect(next[0]).toBe(other);
    expect(next[1]).toBe(her);
    expect(tracks.masksAt(1)).toEqual([{ box: box(405), carried: false }]);
  });

  it("fills the grown box with one flat colour in all three planes", () => {
    const width = 64;
    const height = 32;
    const data = Uint8Array.from({ length: width * height * 1.5 }, (_, i) => (i * 37) % 251);
    maskFace({ format: "yuv420p", width, height, data }, { x: 20, y: 8, width: 16, height: 16 });
    const luma = new Set<number>();
    for (let y = 8; y < 24; y++) for (let x = 20; x < 36; x++) luma.add(data[y * width + x]!);
    expect(luma.size).toBe(1);
    // Outside the grown box, untouched.
    expect(data[0]).toBe(0);
    expect(data[width * height - 1]).toBe(((width * height - 1) * 37) % 251);
  });
});
