import { describe, expect, it } from "vitest";
import type { SightingRecord } from "../store/sighting-store.ts";
import { buildTimeline, parseTime } from "./timeline.ts";

const q = { faceSize: 80, interOcular: 30, sharpness: 100, yawDeg: 0, pitchDeg: 0, detScore: 0.9 };
const s = (id: string, cameraId: string, startTs: number, endTs: number, score = 0.6): SightingRecord => ({
  id,
  trackId: id,
  cameraId,
  startTs,
  endTs,
  faces: 3,
  modelId: "m",
  quality: q,
  match: { personId: "p", name: "P", score },
});

describe("timeline", () => {
  it("orders sightings by time and merges consecutive ones on the same camera", () => {
    const visits = buildTimeline(
      [
        s("c", "lobby", 50_000, 52_000, 0.7),
        s("a", "door", 0, 2_000),
        s("b", "door", 10_000, 12_000, 0.8),
        s("d", "door", 200_000, 201_000),
      ],
      60_000,
    );
    expect(visits.map((v) => [v.cameraId, v.sightings])).toEqual([
      ["door", ["a", "b"]],
      ["lobby", ["c"]],
      ["door", ["d"]],
    ]);
    expect(visits[0]).toMatchObject({ startTs: 0, endTs: 12_000, faces: 6, score: 0.8 });
  });

  it("does not merge across a gap longer than the merge window", () => {
    expect(buildTimeline([s("a", "door", 0, 1000), s("b", "door", 100_000, 101_000)], 60_000)).toHaveLength(
      2,
    );
  });

  it("reads relative, ISO and epoch times, and rejects nonsense", () => {
    const now = Date.parse("2026-11-27T12:00:00Z");
    expect(parseTime("2h", now)).toBe(now - 7_200_000);
    expect(parseTime("2026-11-27T10:00:00Z")).toBe(Date.parse("2026-11-27T10:00:00Z"));
    expect(parseTime("1795822512108")).toBe(1795822512108);
    expect(() => parseTime("tuesday-ish")).toThrow(/cannot read "tuesday-ish"/);
  });
});
