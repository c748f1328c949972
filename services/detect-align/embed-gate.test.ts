import { describe, expect, it } from "vitest";
import { loadConfig } from "../../lib/config/index.ts";
import type { QualityScores } from "../../lib/contracts/index.ts";
import { EmbedGate } from "./embed-gate.ts";

const options = { reembedAfterMs: 1000, qualityGain: 0.25, iou: 0.3, forgetAfterMs: 1000 };
const quality = (sharpness: number): QualityScores => ({
  faceSize: 100,
  interOcular: 40,
  sharpness,
  yawDeg: 0,
  pitchDeg: 0,
  detScore: 0.9,
});
let seq = 0;
/** A new frame at capture time `ts`. */
const at = (ts: number) => ({ seq: seq++, ts });
const face = (x: number, sharpness = 50) => ({
  box: { x, y: 100, width: 100, height: 120 },
  quality: quality(sharpness),
});

describe("embed gate", () => {
  it("embeds a new face at once, passes over it while it stays put, and again once it is due", () => {
    const gate = new EmbedGate(options);
    expect(gate.decide("cam", at(0), [face(100)])).toEqual(["new"]);
    expect(gate.decide("cam", at(200), [face(104)])).toEqual(["same"]);
    expect(gate.decide("cam", at(800), [face(110)])).toEqual(["same"]);
    expect(gate.decide("cam", at(1000), [face(112)])).toEqual(["due"]);
    expect(gate.decide("cam", at(1200), [face(114)])).toEqual(["same"]);
  });

  it("embeds a clearly better look at the same face before it is due, not a marginally better one", () => {
    const gate = new EmbedGate(options);
    gate.decide("cam", at(0), [face(100, 40)]);
    expect(gate.decide("cam", at(200), [face(100, 45)])).toEqual(["same"]);
    expect(gate.decide("cam", at(400), [face(100, 60)])).toEqual(["better"]);
    expect(gate.decide("cam", at(600), [face(100, 62)])).toEqual(["same"]);
  });

  it("keeps faces apart by position and cameras apart by id", () => {
    const gate = new EmbedGate(options);
    expect(gate.decide("cam", at(0), [face(100), face(600)])).toEqual(["new", "new"]);
    expect(gate.decide("cam", at(200), [face(600), face(100), face(1000)])).toEqual(["same", "same", "new"]);
    expect(gate.decide("other", at(200), [face(100)])).toEqual(["new"]);
  });

  it("forgets a face unseen for a while, so one coming back is embedded at once", () => {
    const gate = new EmbedGate(options);
    gate.decide("cam", at(0), [face(100)]);
    gate.decide("cam", at(200), []);
    expect(gate.decide("cam", at(1300), [face(100)])).toEqual(["new"]);
  });

  it("answers a redelivered frame as it did the first time, so its faces are not lost", () => {
    const gate = new EmbedGate(options);
    const first = { seq: 1000, ts: 0 };
    expect(gate.decide("cam", first, [face(100)])).toEqual(["new"]);
    expect(gate.decide("cam", first, [face(100)])).toEqual(["new"]);
    const due = { seq: 1005, ts: 1000 };
    expect(gate.decide("cam", due, [face(100)])).toEqual(["due"]);
    expect(gate.decide("cam", due, [face(100)])).toEqual(["due"]);
    expect(gate.decide("cam", at(1200), [face(100)])).toEqual(["same"]);
  });

  it("embeds every face when re-embedding is switched off", () => {
    const gate = new EmbedGate({ ...options, reembedAfterMs: 0 });
    expect(gate.decide("cam", at(0), [face(100)])).toEqual(["new"]);
    expect(gate.decide("cam", at(200), [face(100)])).toEqual(["new"]);
  });

  it("is configured shorter than a track's time-out, or the config is refused", () => {
    expect(() => loadConfig({ env: {}, overrides: { "detect.embedGate.reembedAfterMs": 3000 } })).toThrow(
      /reembedAfterMs must be shorter than match.trackTimeoutS/,
    );
    expect(
      loadConfig({
        env: {},
        overrides: { "detect.embedGate.reembedAfterMs": 3000, "match.trackTimeoutS": 4 },
      }).detect.embedGate.reembedAfterMs,
    ).toBe(3000);
  });
});
