import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../../config/index.ts";
import { detectOptionsFor } from "../../../../services/detect-align/index.ts";
import { iou } from "../../../geometry/index.ts";
import type { Yuv420Image } from "../../pixels/yuv.ts";
import { sharedData, sharedVision, skipReason, testConfig } from "../../../../test/helpers.ts";
import { startVisionThreads } from "../../threads/vision-thread.ts";
import type { Detection } from "./detection.ts";
import { cropFrame, detectSmallFaces, evenRect, frameTiles, smallFaceRegions } from "./small-faces.ts";

/** A yuv420p frame whose every sample says where it is: Y = (x + 3y) mod 256, U = x/2 mod 256, V = y/2 mod 256. */
function positional(width: number, height: number): Yuv420Image {
  const data = new Uint8Array(width * height * 1.5);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data[y * width + x] = (x + 3 * y) % 256;
  const cw = width / 2;
  const ch = height / 2;
  for (let y = 0; y < ch; y++)
    for (let x = 0; x < cw; x++) {
      data[width * height + y * cw + x] = x % 256;
      data[width * height + cw * ch + y * cw + x] = y % 256;
    }
  return { format: "yuv420p", width, height, data };
}

const face = (x: number, y: number, size: number): Detection => ({
  box: { x, y, width: size, height: size * 1.2 },
  score: 0.9,
  landmarks: [],
});

describe("small-face regions", () => {
  it("crops a yuv420p frame's three planes, and a BGR frame, to the same place", () => {
    const frame = positional(64, 48);
    const r = evenRect({ x: 11, y: 7, width: 21, height: 15 }, frame);
    expect(r).toEqual({ x: 10, y: 6, width: 22, height: 16 });
    const crop = cropFrame(frame, r) as Yuv420Image;
    expect([crop.width, crop.height, crop.data.length]).toEqual([22, 16, 22 * 16 * 1.5]);
    for (const [x, y] of [
      [0, 0],
      [21, 15],
      [5, 9],
    ] as const) {
      expect(crop.data[y * 22 + x]).toBe((r.x + x + 3 * (r.y + y)) % 256);
      const c = (y >> 1) * 11 + (x >> 1);
      expect(crop.data[22 * 16 + c]).toBe((r.x + x) >> 1);
      expect(crop.data[22 * 16 + 11 * 8 + c]).toBe((r.y + y) >> 1);
    }
    const bgr = { width: 8, height: 6, data: Uint8Array.from({ length: 8 * 6 * 3 }, (_, i) => i) };
    const part = cropFrame(bgr, { x: 2, y: 2, width: 4, height: 2 });
    expect(Array.from(part.data.subarray(0, 3))).toEqual([
      (2 * 8 + 2) * 3,
      (2 * 8 + 2) * 3 + 1,
      (2 * 8 + 2) * 3 + 2,
    ]);
    expect(() => cropFrame(bgr, { x: 1, y: 0, width: 2, height: 2 })).toThrow(/even-aligned/);
  });

  it("puts one square over a clump of small faces, another over a lone one, none over large faces", () => {
    const frame = { width: 1920, height: 1080 };
    const faces = [
      face(100, 100, 30),
      face(160, 120, 28),
      face(220, 90, 32), // a clump near the top-left corner
      face(1500, 800, 40), // alone
      face(900, 400, 150), // close to the camera: found well already
    ];
    const regions = smallFaceRegions(faces, frame, { below: 64, region: 512, maxRegions: 4 });
    expect(regions).toHaveLength(2);
    for (const r of regions) {
      expect(r.width).toBe(512);
      expect(r.x).toBeGreaterThanOrEqual(0);
      expect(r.y + r.height).toBeLessThanOrEqual(1080);
    }
    const covers = (f: Detection) =>
      regions.some((r) => f.box.x >= r.x && f.box.x + f.box.width <= r.x + r.width);
    expect(faces.slice(0, 4).every(covers)).toBe(true);
    expect(smallFaceRegions(faces, frame, { below: 64, region: 512, maxRegions: 1 })).toHaveLength(1);
  });

  it("tiles the whole frame with overlap", () => {
    const tiles = frameTiles({ width: 1920, height: 1080 }, { cols: 2, rows: 2, overlap: 0.1 });
    expect(tiles).toHaveLength(4);
    expect(tiles[0]).toMatchObject({ x: 0, y: 0 });
    const last = tiles[3]!;
    expect([last.x + last.width, last.y + last.height]).toEqual([1920, 1080]);
    expect(tiles[0]!.width).toBeGreaterThan(960);
  });

  it("takes each camera's input size and mode from the config, and detect's for the others", () => {
    const config = loadConfig({
      env: {},
      overrides: {
        cameras: [
          { id: "crowd", url: "rtsp://x/1", detectMaxSide: 1280, smallFaces: "second-pass" },
          { id: "door", url: "rtsp://x/2" },
        ],
      },
    });
    const options = detectOptionsFor(config);
    expect(options("crowd")).toMatchObject({
      maxSide: 1280,
      smallFaces: { mode: "second-pass", region: 512 },
    });
    expect(options("door")).toMatchObject({ maxSide: 640, smallFaces: { mode: "off" } });
    expect(options("cam-1")).toMatchObject({ maxSide: 640, smallFaces: { mode: "off" } });
  });
});

const crowd = sharedData("video", "crowd-1080p.mp4");
const noCrowd = crowd
  ? undefined
  : skipReason("small faces on the crowd clip", "../shared/data/video/crowd-1080p.mp4");

describe.skipIf(!!noCrowd)("small faces on crowd-1080p (real detector)", () => {
  it("a second pass keeps every face of the first and adds ones only full resolution shows", async () => {
    const raw = execFileSync(
      "ffmpeg",
      [
        "-v",
        "error",
        "-ss",
        "4",
        "-i",
        crowd!,
        "-frames:v",
        "1",
        "-pix_fmt",
        "yuv420p",
        "-f",
        "rawvideo",
        "-",
      ],
      { maxBuffer: 1 << 26 },
    );
    const frame: Yuv420Image = { format: "yuv420p", width: 1920, height: 1080, data: new Uint8Array(raw) };
    const { detector } = await sharedVision();
    const plan = {
      mode: "second-pass" as const,
      below: 64,
      region: 512,
      maxRegions: 4,
      tiles: { cols: 2, rows: 2, overlap: 0.1 },
    };
    const first = await detector.detect(frame, { maxSide: 640 });
    const both = await detectSmallFaces(detector, frame, { maxSide: 640 }, plan, 0.3);
    expect(first.some((f) => f.box.width < 64)).toBe(true);
    for (const f of first)
      expect(
        both.some((b) => iou(b.box, f.box) > 0.3),
        "first-pass face kept",
      ).toBe(true);
    expect(both.length).toBeGreaterThan(first.length);
    for (const b of both) {
      expect(b.box.x).toBeGreaterThanOrEqual(-b.box.width / 2);
      expect(b.box.x + b.box.width).toBeLessThanOrEqual(1920 + b.box.width / 2);
    }
    // A camera's options reach the detector through the analyzer, in process and in a worker thread alike.
    const vision = await sharedVision();
    const threads = await startVisionThreads(testConfig({ "models.detectWorkers": 1 }), vision, {
      analyzer: true,
    });
    try {
      const options = { maxSide: 640, smallFaces: { ...plan, nmsIou: 0.3 } };
      const here = await vision.analyzer.analyze(frame, options);
      expect(here.map((f) => f.detection.box)).toEqual(both.map((d) => d.box));
      const there = await threads.analyzer.analyze({ ...frame, data: frame.data.slice() }, options);
      expect(there.map((f) => f.detection.box)).toEqual(here.map((f) => f.detection.box));
      const coarse = await threads.analyzer.analyze({ ...frame, data: frame.data.slice() }, { maxSide: 320 });
      expect(coarse.length).toBeLessThan(first.length);
    } finally {
      await threads.close();
    }
    // Full resolution from the start needs no second look.
    const native = await detectSmallFaces(detector, frame, { maxSide: 1920 }, plan, 0.3);
    expect(native).toEqual(await detector.detect(frame, { maxSide: 1920 }));
  });
});
