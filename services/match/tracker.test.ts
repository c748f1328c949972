import { describe, expect, it } from "vitest";
import { CameraTracker, type TrackedFace } from "./tracker.ts";
import { l2normalize } from "../../lib/geometry/index.ts";

const q = { faceSize: 80, interOcular: 30, sharpness: 100, yawDeg: 0, pitchDeg: 0, detScore: 0.9 };
const unit = (seed: number) => {
  let s = seed;
  return l2normalize(
    new Float32Array(32).map(() => (s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff - 0.5),
  );
};
const near = (v: Float32Array, seed: number, amount = 0.15) =>
  l2normalize(v.map((x, i) => x + amount * (unit(seed)[i]! - 0)));
const face = (seq: number, ts: number, x: number, vector: Float32Array, quality = q): TrackedFace => ({
  faceId: `cam:${seq}:${x}`,
  frameSeq: seq,
  ts,
  box: { x, y: 50, width: 60, height: 60 },
  vector,
  quality,
});

const options = { timeoutMs: 2000, similarity: 0.3, iou: 0.1, reacquire: 0.55 };

describe("CameraTracker", () => {
  it("keeps two people walking side by side on their own tracks and picks each track's best face", () => {
    const tracker = new CameraTracker("cam", options);
    const alice = unit(1),
      bob = unit(2);
    const ids = { alice: new Set<string>(), bob: new Set<string>() };
    for (let i = 0; i < 10; i++) {
      const sharp = i === 6 ? { ...q, sharpness: 400, detScore: 0.99 } : q;
      ids.alice.add(tracker.update(face(i, i * 200, 100 + i * 5, near(alice, 100 + i), sharp)).track.id);
      ids.bob.add(tracker.update(face(i, i * 200, 300 + i * 5, near(bob, 200 + i))).track.id);
    }
    expect(ids.alice.size).toBe(1);
    expect(ids.bob.size).toBe(1);
    const tracks = tracker.flush();
    expect(tracks.map((t) => t.faces)).toEqual([10, 10]);
    expect(tracks.find((t) => ids.alice.has(t.id))!.best.frameSeq).toBe(6);
  });

  it("starts a new track for a different person in the same place, and ends tracks after the time-out", () => {
    const tracker = new CameraTracker("cam", options);
    const a = tracker.update(face(0, 0, 100, unit(1))).track;
    const b = tracker.update(face(1, 200, 100, unit(2))).track;
    expect(b.id).not.toBe(a.id);
    const { ended } = tracker.update(face(20, 5000, 100, unit(3)));
    expect(ended.map((t) => t.id).sort()).toEqual([a.id, b.id].sort());
  });

  it("re-acquires a person who reappears elsewhere in the frame within the time-out", () => {
    const tracker = new CameraTracker("cam", options);
    const v = unit(5);
    const first = tracker.update(face(0, 0, 10, v)).track;
    const again = tracker.update(face(5, 1000, 500, near(v, 9, 0.05))).track;
    expect(again.id).toBe(first.id);
  });
});
