import { describe, expect, it } from "vitest";
import { MemoryBus } from "../../lib/bus/index.ts";
import { DeadLetterContract, FaceContract, FrameContract, Topics } from "../../lib/contracts/index.ts";
import { StageRunner } from "../../lib/runtime/runner.ts";
import { encodeJpeg, decodeImage, resizeImage } from "../../lib/vision/pixels/image.ts";
import { isYuv420 } from "../../lib/vision/pixels/yuv.ts";
import { cosine, iou } from "../../lib/geometry/index.ts";
import { samplePhotos } from "../../lib/media/sample-media.ts";
import { sharedVision, testConfig } from "../../test/helpers.ts";
import { createDetectAlign } from "./index.ts";
import path from "node:path";

describe("detect-align on JPEG frames (as they cross Kafka)", () => {
  it("decodes them in the analyzer, finds their faces, and dead-letters an undecodable one alone", async () => {
    const config = testConfig();
    const vision = await sharedVision();
    const photo = (await samplePhotos(path.resolve(config.dataDir, "cache")))[0]!;
    const image = await resizeImage(await decodeImage(photo), 1280, 720);
    const jpeg = await encodeJpeg(image, 90);
    const bus = new MemoryBus({ capacity: 64, retryDelayMs: 1 });
    const detect = createDetectAlign(config, { analyzer: vision.analyzer });
    const processed: string[] = [];
    detect.stage.onFrameProcessed = (f) => processed.push(f.cameraId);
    const runner = await new StageRunner(bus, detect.stage, { ...detect.run, retryDelayMs: 1 }).start();
    const faces: number[] = [];
    const dead: string[] = [];
    await bus.subscribe(Topics.faces, { group: "t" }, async (rs) => {
      faces.push(...rs.map((r) => FaceContract.decode(r.value).frameSeq));
    });
    await bus.subscribe(Topics.dlq, { group: "t" }, async (rs) => {
      dead.push(...rs.map((r) => DeadLetterContract.decode(r.value).reason));
    });
    // Three cameras, so the embed gate sends every face on (the same face again on one camera would not be).
    const frame = (seq: number, data: Uint8Array) => ({
      key: `cam-${seq}`,
      value: FrameContract.encode({
        cameraId: `cam-${seq}`,
        seq,
        captureTs: Date.now(),
        width: 1280,
        height: 720,
        format: "jpeg",
        image: data,
      }),
    });
    await bus.publish(Topics.frames, [
      frame(1, jpeg),
      frame(2, Uint8Array.from([0xff, 0xd8, 1, 2, 3])),
      frame(3, jpeg),
    ]);
    await bus.drain();
    await runner.stop();
    await bus.close();
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatch(/frame cam-2#2 is not a readable image/);
    expect(new Set(faces)).toEqual(new Set([1, 3]));
    expect(processed).toContain("cam-1");
    expect(processed).toContain("cam-3");
  });

  it("takes a JPEG frame down the live path: the faces of the same frame as a photo, crops in yuv420p", async () => {
    const config = testConfig();
    const vision = await sharedVision();
    const photo = (await samplePhotos(path.resolve(config.dataDir, "cache")))[0]!;
    const jpeg = await encodeJpeg(await resizeImage(await decodeImage(photo), 1280, 720), 90);
    const live = await vision.analyzer.analyze({
      format: "jpeg",
      width: 1280,
      height: 720,
      data: jpeg,
      label: "t",
    });
    const asPhoto = await vision.analyzer.analyze(await decodeImage(jpeg));
    expect(live.length).toBeGreaterThan(0);
    expect(live).toHaveLength(asPhoto.length);
    for (const face of live) {
      // Paired by overlap, not by order: two faces of nearly equal score may come out in either order.
      const other = asPhoto.reduce((best, f) =>
        iou(f.detection.box, face.detection.box) > iou(best.detection.box, face.detection.box) ? f : best,
      );
      expect(isYuv420(face.crop)).toBe(true);
      expect(isYuv420(other.crop)).toBe(false);
      // The photo path downscales for the detector with libvips' linear filter, the live path by 2×2 means, so
      // boxes and landmarks move by a few pixels (up to 5 % of the face when written): the same faces, which
      // embed as the same person.
      expect(iou(face.detection.box, other.detection.box)).toBeGreaterThan(0.85);
      const [a, b] = await vision.embedder.embed([face.crop, other.crop]);
      expect(cosine(a!, b!)).toBeGreaterThan(0.9);
      expect(face.quality.liveReasons).toEqual(other.quality.liveReasons);
      const { sharpness } = face.quality.scores;
      expect(Math.abs(sharpness - other.quality.scores.sharpness)).toBeLessThan(0.15 * sharpness);
    }
  });
});
