import { describe, expect, it } from "vitest";
import { bytesToVector } from "../../lib/contracts/index.ts";
import { l2normalize } from "../../lib/geometry/index.ts";
import { embeddingMessage } from "../../lib/testing/embedding-message.ts";
import { decodeCheckpoint, encodeCheckpoint, type MatchFace } from "./checkpoint.ts";
import { CameraTracker } from "./tracker.ts";

const quality = { faceSize: 80, interOcular: 30, sharpness: 120, yawDeg: 2, pitchDeg: -3, detScore: 0.95 };
const vector = (seed: number) =>
  l2normalize(Float32Array.from({ length: 8 }, (_, i) => Math.sin(seed * 7 + i)));

function face(seq: number, ts: number, v: Float32Array): MatchFace {
  const message = embeddingMessage({ cameraId: "door", seq, ts, vector: v, modelId: "reid-0095", quality });
  return {
    faceId: message.faceId,
    frameSeq: seq,
    ts,
    box: message.box,
    vector: v,
    quality,
    recognisability: 0.8,
    message,
  };
}

describe("match checkpoint", () => {
  it("round-trips open tracks so a restored tracker continues them exactly", () => {
    const options = { timeoutMs: 3000, similarity: 0.3, iou: 0.1, reacquire: 0.55 };
    const live = new CameraTracker<MatchFace>("door", options);
    for (let i = 0; i < 3; i++) live.update(face(i, 1000 + i * 200, vector(1)));
    const bytes = encodeCheckpoint({
      nextOffset: "42",
      tracks: [...live.open],
      trackMatches: { [live.open[0]!.id]: { personId: "ann@example", name: "Ann", score: 0.7 } },
      lastAlert: { "ann@example@door": 1000 },
      alertedTracks: [`${live.open[0]!.id}/ann@example`],
    });
    const back = decodeCheckpoint(bytes);
    expect(back.nextOffset).toBe("42");
    expect(back.lastAlert).toEqual({ "ann@example@door": 1000 });
    expect(back.alertedTracks).toEqual([`${live.open[0]!.id}/ann@example`]);
    // A checkpoint written before followed tracks were kept reads as none alerted.
    const older = encodeCheckpoint({ nextOffset: "1", tracks: [], trackMatches: {}, lastAlert: {} });
    expect(decodeCheckpoint(older).alertedTracks).toEqual([]);
    const [a, b] = [live.open[0]!, back.tracks[0]!];
    expect({ ...b, template: undefined, best: undefined }).toEqual({
      ...a,
      template: undefined,
      best: undefined,
    });
    expect(Array.from(b.template.vector)).toEqual(Array.from(a.template.vector));
    expect(b.template.trust).toBeCloseTo(a.template.trust, 12);
    expect(Array.from(b.best.message.crop)).toEqual(Array.from(a.best.message.crop));
    expect(Array.from(bytesToVector(b.best.message.vector))).toEqual(Array.from(a.best.vector));
    // The restored tracker takes the next face into the same track, and knows the faces it already holds.
    const restored = new CameraTracker<MatchFace>("door", options);
    restored.restore(back.tracks);
    expect(restored.holding("door:1:0")?.id).toBe(a.id);
    expect(restored.update(face(3, 1600, vector(1))).track.id).toBe(a.id);
    expect(restored.open[0]!.faces).toBe(4);
  });
});
