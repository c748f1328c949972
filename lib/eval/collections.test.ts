import { describe, expect, it } from "vitest";
import type { AlignedFace } from "../vision/inference/face-analyzer.ts";
import { recognisability, type RecognisabilityModel } from "../vision/pixels/quality.ts";
import { liveDecision, photoGate } from "./collections.ts";

const model: RecognisabilityModel = { intercept: -38.574, logSharpness: 1.4836, detScore: 37.659 };

function face(sharpness: number, detScore: number, reasons: string[], liveReasons: string[]): AlignedFace {
  return {
    detection: { box: { x: 0, y: 0, width: 40, height: 40 }, landmarks: [], score: detScore },
    crop: { width: 1, height: 1, data: new Uint8Array(3) },
    quality: {
      scores: { faceSize: 40, interOcular: 16, sharpness, yawDeg: 0, pitchDeg: 0, detScore },
      reasons,
      liveReasons,
    },
  };
}

describe("which faces an operating-point collection counts", () => {
  const sharp = face(80, 0.95, [], []);
  const weakButTrusted = face(12, 0.95, ["blurred: sharpness 12.0 < 15"], []);
  const weakUntrusted = face(4, 0.8, ["blurred: sharpness 4.0 < 15"], []);
  const dropped = face(1, 0.95, ["blurred"], ["blurred: sharpness 1.0 < 3"]);

  it("photo gate: only faces passing it", () => {
    expect([sharp, weakButTrusted, weakUntrusted, dropped].map(photoGate)).toEqual([
      true,
      false,
      false,
      false,
    ]);
  });

  it("live video: what the live gate keeps and a track of it alone would trust", () => {
    const minTrust = 0.05;
    expect(recognisability(weakButTrusted.quality.scores, model)).toBeGreaterThanOrEqual(minTrust);
    expect(recognisability(weakUntrusted.quality.scores, model)).toBeLessThan(minTrust);
    const live = liveDecision(model, minTrust);
    expect([sharp, weakButTrusted, weakUntrusted, dropped].map(live)).toEqual([true, true, false, false]);
    // Without a recognisability model the match stage trusts every look the live gate keeps.
    expect([sharp, weakButTrusted, weakUntrusted, dropped].map(liveDecision(undefined, minTrust))).toEqual([
      true,
      true,
      true,
      false,
    ]);
  });
});
