import { describe, expect, it } from "vitest";
import sharp from "sharp";
import { loadConfig } from "../../config/index.ts";
import { alignFace, applyAffine } from "./align.ts";
import type { BgrImage } from "./image.ts";
import { assessQuality, poseFromLandmarks, sharpness } from "./quality.ts";
import { ARCFACE_TEMPLATE_112 } from "../models/registry.ts";
import { type Point } from "../../geometry/index.ts";

const gate = loadConfig({ env: {} }).quality;

/** A generated "face" image: a textured pattern (hair-like stripes and noise) with known landmark positions. */
async function texturedImage(size: number, blurSigma?: number): Promise<BgrImage> {
  const raw = new Uint8Array(size * size * 3);
  let seed = 7;
  for (let i = 0; i < raw.length; i += 3) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    const x = (i / 3) % size;
    const v = ((x >> 2) % 2 ? 180 : 60) + (seed % 50);
    raw[i] = raw[i + 1] = raw[i + 2] = v;
  }
  let pipeline = sharp(raw, { raw: { width: size, height: size, channels: 3 } });
  if (blurSigma) pipeline = pipeline.blur(blurSigma);
  const data = await pipeline.raw().toBuffer();
  return { width: size, height: size, data: new Uint8Array(data) };
}

const scaled = (pts: Point[], s: number, dx = 0, dy = 0) =>
  pts.map(([x, y]) => [x * s + dx, y * s + dy] as Point);

async function verdict(
  image: BgrImage,
  landmarks: Point[],
  box: { width: number; height: number },
  detScore = 0.95,
) {
  const { crop } = alignFace(image, landmarks, ARCFACE_TEMPLATE_112, 112, 112);
  return assessQuality({ box, landmarks, detScore, crop }, gate);
}

describe("quality gate", () => {
  it("passes a sharp, frontal, large face", async () => {
    const image = await texturedImage(224);
    const v = await verdict(image, scaled(ARCFACE_TEMPLATE_112, 2), { width: 180, height: 200 });
    expect(v.reasons).toEqual([]);
    expect(Math.abs(v.scores.yawDeg)).toBeLessThan(2);
  });

  it("rejects a blurred face and says so", async () => {
    const sharpImage = await texturedImage(224);
    const blurred = await texturedImage(224, 10);
    expect(sharpness(blurred)).toBeLessThan(sharpness(sharpImage) / 10);
    const v = await verdict(blurred, scaled(ARCFACE_TEMPLATE_112, 2), { width: 180, height: 200 });
    expect(v.reasons.some((r) => r.startsWith("blurred"))).toBe(true);
  });

  it("rejects a tiny face on size and inter-ocular distance", async () => {
    const image = await texturedImage(224);
    const v = await verdict(image, scaled(ARCFACE_TEMPLATE_112, 0.2, 50, 50), { width: 20, height: 24 });
    expect(v.reasons.some((r) => r.startsWith("too small"))).toBe(true);
    expect(v.reasons.some((r) => r.startsWith("eyes too close"))).toBe(true);
  });

  it("accepts in-plane rotation (alignment removes it) but rejects a head turned away", async () => {
    const image = await texturedImage(300);
    const theta = (35 * Math.PI) / 180;
    const rotation: [number, number, number, number, number, number] = [
      2 * Math.cos(theta),
      -2 * Math.sin(theta),
      120,
      2 * Math.sin(theta),
      2 * Math.cos(theta),
      0,
    ];
    const rolled = ARCFACE_TEMPLATE_112.map((p) => applyAffine(rotation, p));
    const rolledVerdict = await verdict(image, rolled, { width: 180, height: 200 });
    expect(poseFromLandmarks(rolled).rollDeg).toBeCloseTo(35, 0);
    expect(rolledVerdict.reasons).toEqual([]);

    // Turned ~70°: the nose projects almost onto the far eye.
    const t = ARCFACE_TEMPLATE_112;
    const turned: Point[] = ([t[0]!, t[1]!, [t[1]![0] - 1, t[2]![1]], t[3]!, t[4]!] as Point[]).map(
      ([x, y]) => [x * 2, y * 2] as Point,
    );
    const turnedVerdict = await verdict(image, turned, { width: 180, height: 200 });
    expect(turnedVerdict.scores.yawDeg).toBeGreaterThan(gate.maxYawDeg);
    expect(turnedVerdict.reasons.some((r) => r.startsWith("turned away"))).toBe(true);
    // Live video leaves pose to the match: such faces were recognised as often as frontal ones (README).
    expect(turnedVerdict.liveReasons).toEqual([]);
    const strict = { ...gate, live: { ...gate.live, maxYawDeg: 50 } };
    const { crop } = alignFace(image, turned, ARCFACE_TEMPLATE_112, 112, 112);
    const box = { width: 180, height: 200 };
    expect(assessQuality({ box, landmarks: turned, detScore: 0.95, crop }, strict).liveReasons).toEqual([
      expect.stringMatching(/^turned away/),
    ]);
  });

  it("rejects an uncertain detection", async () => {
    const image = await texturedImage(224);
    const v = await verdict(image, scaled(ARCFACE_TEMPLATE_112, 2), { width: 180, height: 200 }, 0.3);
    expect(v.reasons).toEqual([expect.stringMatching(/^uncertain detection: score 0\.30/)]);
    expect(v.liveReasons).toEqual(v.reasons);
  });
});

describe("live video's gate", () => {
  it("passes a distant face the photo gate refuses, as a weak look, but not one below its floors", async () => {
    const image = await texturedImage(224);
    // Eyes 10 px apart in a 26 px box: a face at surveillance distance.
    const distant = await verdict(image, scaled(ARCFACE_TEMPLATE_112, 0.27, 80, 80), {
      width: 26,
      height: 30,
    });
    expect(distant.reasons.some((r) => r.startsWith("too small"))).toBe(true);
    expect(distant.liveReasons).toEqual([]);
    const speck = await verdict(image, scaled(ARCFACE_TEMPLATE_112, 0.1, 80, 80), { width: 9, height: 11 });
    expect(speck.liveReasons).toEqual([
      `too small: face 9.0 px < ${gate.live.minFaceSize} px`,
      expect.stringMatching(/^eyes too close: inter-ocular 3\.\d px < 5 px/),
    ]);
  });

  it("drops a face with no detail left, and never asks more than the photo gate", async () => {
    const flat: BgrImage = { width: 224, height: 224, data: new Uint8Array(224 * 224 * 3).fill(128) };
    const v = await verdict(flat, scaled(ARCFACE_TEMPLATE_112, 2), { width: 180, height: 200 });
    expect(v.liveReasons).toEqual([`blurred: sharpness 0.0 < ${gate.live.minSharpness}`]);
    const lenient = { ...gate, minSharpness: 0 };
    const { crop } = alignFace(flat, scaled(ARCFACE_TEMPLATE_112, 2), ARCFACE_TEMPLATE_112, 112, 112);
    const box = { width: 180, height: 200 };
    const landmarks = scaled(ARCFACE_TEMPLATE_112, 2);
    expect(assessQuality({ box, landmarks, detScore: 0.95, crop }, lenient).liveReasons).toEqual([]);
  });
});
