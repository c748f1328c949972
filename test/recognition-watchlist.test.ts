import { describe, expect, it } from "vitest";
import path from "node:path";
import { degradeImage, surveillanceScale, SURVEILLANCE_SCALES } from "../lib/eval/degrade.ts";
import { scanIdentities } from "../lib/eval/faces.ts";
import { evaluateWatchlist, operatingPoint, watchlistProtocol } from "../lib/eval/watchlist.ts";
import { minTrustFor, recognisabilityFor, thresholdFor } from "../lib/vision/models/calibration.ts";
import { decodeImage } from "../lib/vision/pixels/image.ts";
import { identitySlice, sharedData, sharedVision, skipReason, testConfig } from "./helpers.ts";

describe("the open-set watchlist protocol", () => {
  it("enrols every second identity with two or more images from its first image; the rest are strangers", () => {
    const ids = [
      { id: "a", files: ["a/1", "a/2", "a/3"] },
      { id: "b", files: ["b/1"] },
      { id: "c", files: ["c/1", "c/2"] },
      { id: "d", files: ["d/1", "d/2"] },
      { id: "e", files: ["e/1", "e/2", "e/3", "e/4"] },
    ];
    const p = watchlistProtocol(ids);
    expect(p.enrolled).toEqual([
      { id: "a", file: "a/1", probes: ["a/2", "a/3"] },
      { id: "d", file: "d/1", probes: ["d/2"] },
    ]);
    expect(p.nonMated.map((i) => i.id)).toEqual(["b", "c", "e"]);
  });

  it("sets the threshold on the non-mated scores and counts a wrong or low best candidate as a miss", () => {
    const nonMated = Array.from({ length: 200 }, (_, i) => i / 200); // 0 … 0.995
    const mated = [0.999, 0.9, 0.5, -Infinity];
    const op = operatingPoint(mated, nonMated, 0.01);
    // 1 % of 200 = 2 allowed: the threshold sits just above the third-highest non-mated score.
    expect(op.threshold).toBeCloseTo(0.985, 6);
    expect(op.achievedFpir).toBe(0.01);
    expect(op.fnir).toBe(0.75);
  });

  it("draws each image's degradation from its name and the seed, about one in five each", () => {
    const keys = Array.from({ length: 5000 }, (_, i) => `Person_${i}/Person_${i}_0001.jpg`);
    const draws = keys.map((k) => surveillanceScale(k, 1));
    expect(keys.map((k) => surveillanceScale(k, 1))).toEqual(draws);
    expect(keys.map((k) => surveillanceScale(k, 2))).not.toEqual(draws);
    for (const s of SURVEILLANCE_SCALES) {
      const share = draws.filter((d) => d === s).length / draws.length;
      expect(share).toBeGreaterThan(0.17);
      expect(share).toBeLessThan(0.23);
    }
  });
});

const lfw = sharedData("lfw-dev", "images");
const lowres = sharedData("lfw-dev-lowres", "images");
const noLfw =
  !lfw || !lowres
    ? skipReason("watchlist evaluation on LFW", "../shared/data/lfw-dev and lfw-dev-lowres")
    : undefined;

describe.skipIf(!!noLfw)("vigil eval watchlist on LFW dev (real models, real data)", () => {
  it("degrades an image exactly as lfw-dev-lowres was made, at each scale it was drawn", async () => {
    // Scales read off the published files (each matches one scale of the recipe pixel for pixel).
    for (const [file, scale] of [
      ["Aaron_Sorkin/Aaron_Sorkin_0002.jpg", 0.3],
      ["Abdullah/Abdullah_0001.jpg", 0.16],
      ["Abdullah_Gul/Abdullah_Gul_0001.jpg", 0.12],
    ] as const) {
      const { bytes } = await degradeImage(path.join(lfw!, file), scale);
      const ours = await decodeImage(bytes as Uint8Array, file);
      const theirs = await decodeImage(path.join(lowres!, file), file);
      expect(Buffer.compare(Buffer.from(ours.data), Buffer.from(theirs.data)), file).toBe(0);
    }
  });

  it("runs the protocol through the product's path on a slice of LFW dev: tracks beat single images", async () => {
    // The first 80 identities in sorted order (the full set takes minutes).
    const dir = identitySlice(lfw!, 80);
    const slice = scanIdentities(dir);
    const vision = await sharedVision();
    const config = testConfig();
    const modelId = vision.embedder.modelId;
    const rule = { threshold: thresholdFor(modelId, config), minTrust: minTrustFor(modelId, config) };
    const clean = await evaluateWatchlist(vision, dir, {
      degrade: "none",
      seed: 1,
      rule,
      recognisability: recognisabilityFor(modelId),
    });
    expect(clean.enrolled).toBeGreaterThan(10);
    expect(clean.matedProbes + clean.nonMatedProbes + clean.enrolled).toBe(
      slice.flatMap((i) => i.files).length,
    );
    expect(clean.rank1).toBeGreaterThan(0.95);
    expect(clean.fnirAtFpir1e2).toBeLessThan(0.15);
    const degraded = await evaluateWatchlist(vision, dir, {
      degrade: "surveillance",
      seed: 1,
      rule,
      recognisability: recognisabilityFor(modelId),
    });
    expect(degraded.rank1).toBeLessThan(clean.rank1);
    expect(Object.keys(degraded.scales).length).toBeGreaterThan(3);
    expect(degraded.rank1Track).toBeGreaterThanOrEqual(degraded.rank1);
    expect(degraded.fnirAtFpir1e2Track).toBeLessThan(degraded.fnirAtFpir1e2);
    for (const key of ["fnirAtFpir1e2", "fnirAtFpir1e2Track", "fnirAtFpir1e3", "fnirAtFpir1e3Track", "rank1"])
      expect(degraded).toHaveProperty(key, expect.any(Number));
    // The breakdowns account for every probe and every mated track, and kept images are found most often.
    expect(degraded.byScale.reduce((n, b) => n + b.mated + b.nonMated, 0)).toBe(
      degraded.matedProbes + degraded.nonMatedProbes,
    );
    expect(degraded.tracksByBestLook.reduce((n, b) => n + b.tracks, 0)).toBe(degraded.track.searches);
    const kept = degraded.byScale.find((b) => b.scale === 1)!;
    const smallest = degraded.byScale.at(-1)!;
    expect(kept.matedFound / kept.mated).toBeGreaterThan(smallest.matedFound / Math.max(1, smallest.mated));
    expect(degraded.trackFnirIfScaleDecides).toBeGreaterThan(0);
    expect(degraded.trackFnirIfScaleDecides).toBeLessThan(1);
    expect(clean.trackFnirIfScaleDecides).toBeUndefined();
  }, 300_000);
});
