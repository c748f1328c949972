import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import path from "node:path";
import { scanIdentities } from "../lib/eval/faces.ts";
import { centralFace } from "../lib/eval/lfw.ts";
import { drawDegradation, writeDistillData } from "../lib/train/distill-data.ts";
import { degradedJpeg } from "../lib/eval/degrade.ts";
import { seededRandom } from "../lib/eval/cluster.ts";
import { decodeImage } from "../lib/vision/pixels/image.ts";
import { sharedData, sharedVision, skipReason, tempDir } from "./helpers.ts";

describe("the degradation draws of the cross-resolution pairs", () => {
  it("stay within issue 22's ranges: scale 0.1–0.4, JPEG 20–60, a blur about one time in three", () => {
    const random = seededRandom(7);
    const draws = Array.from({ length: 3000 }, () => drawDegradation(random));
    for (const d of draws) {
      expect(d.scale).toBeGreaterThanOrEqual(0.1);
      expect(d.scale).toBeLessThan(0.4);
      expect(Number.isInteger(d.quality)).toBe(true);
      expect(d.quality).toBeGreaterThanOrEqual(20);
      expect(d.quality).toBeLessThanOrEqual(60);
      expect(d.blur === 0 || (d.blur >= 0.3 && d.blur <= 1)).toBe(true);
    }
    const blurred = draws.filter((d) => d.blur > 0).length / draws.length;
    expect(blurred).toBeGreaterThan(0.29);
    expect(blurred).toBeLessThan(0.38);
    expect(new Set(draws.map((d) => d.quality)).size).toBe(41);
  });
});

const images = sharedData("lfw-train", "images");

const meanAbsDiff = (a: Uint8Array, b: Uint8Array) => {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i]! - b[i]!);
  return sum / a.length;
};

describe.skipIf(!images)("vigil train-data distill on lfw-train (real photos, real models)", () => {
  if (!images) skipReason("the distillation pairs", "../shared/data/lfw-train");

  it("blurs by the drawn σ, the smallest ones included (sharp's default mask would leave them untouched)", async () => {
    const file = path.join(images!, scanIdentities(images!)[0]!.files[0]!);
    const detail = async (blur: number) => {
      const img = await decodeImage(await degradedJpeg(file, { scale: 0.4, quality: 60, blur }));
      let sum = 0;
      for (let i = 3; i < img.data.length; i++) sum += Math.abs(img.data[i]! - img.data[i - 3]!);
      return sum;
    };
    const [none, small, large] = [await detail(0), await detail(0.35), await detail(1)];
    expect(small).toBeLessThan(none);
    expect(large).toBeLessThan(small);
  }, 30_000);

  it("writes each photo's pipeline crop, then degraded crops of the same face at the same place, repeatably", async () => {
    const vision = await sharedVision();
    const [a, b] = [tempDir("vigil-distill-"), tempDir("vigil-distill-")];
    const run = (out: string) =>
      writeDistillData(vision, images!, out, { variants: 3, seed: 5, limit: 4 }, () => ({
        tick() {},
        done() {},
      }));
    const manifest = await run(a);
    expect(manifest).toMatchObject({ format: "vigil-distill-1", width: 128, height: 128, perPhoto: 4 });
    expect(manifest.embedder).toBe(vision.embedder.modelId);
    expect(manifest.photos.length + manifest.skipped.length).toBe(4);
    expect(manifest.photos.length).toBeGreaterThanOrEqual(3);
    const size = 128 * 128 * 3;
    const crops = new Uint8Array(readFileSync(path.join(a, "crops.u8")));
    expect(crops.length).toBe(manifest.photos.length * 4 * size);
    expect(JSON.parse(readFileSync(path.join(a, "manifest.json"), "utf8"))).toEqual(manifest);
    // The same seed gives the same bytes: a training run can be repeated.
    await run(b);
    expect(new Uint8Array(readFileSync(path.join(b, "crops.u8")))).toEqual(crops);

    const crop = (photo: number, k: number) =>
      crops.subarray((photo * 4 + k) * size, (photo * 4 + k + 1) * size);
    const first = manifest.photos[0]!;
    expect(first.file).toBe(scanIdentities(images!)[0]!.files[0]);
    // The clean crop is exactly what the pipeline hands the embedder for that photo.
    const image = await decodeImage(path.join(images!, first.file));
    const face = centralFace(await vision.analyzer.analyze(image), image)!;
    expect(crop(0, 0)).toEqual(face.crop.data);
    expect(first.degradations).toHaveLength(3);
    for (let k = 1; k <= 3; k++) {
      // Degraded, not copied; still the same face in the same place: far nearer its own clean crop than to
      // another person's.
      const own = meanAbsDiff(crop(0, k), crop(0, 0));
      expect(own).toBeGreaterThan(1);
      expect(own).toBeLessThan(meanAbsDiff(crop(0, k), crop(1, 0)));
    }
  }, 60_000);
});
