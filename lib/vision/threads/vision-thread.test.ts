import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { samplePhotos } from "../../media/sample-media.ts";
import { sharedVision, testConfig } from "../../../test/helpers.ts";
import { decodeImage } from "../pixels/image.ts";
import { startVisionThreads, VisionThread, ThreadedAnalyzer } from "./vision-thread.ts";

const config = testConfig();
const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups) await c();
});

describe("vision worker threads", () => {
  it("give the same faces and vectors as the in-process models", async () => {
    const vision = await sharedVision();
    const threads = await startVisionThreads(config, vision);
    cleanups.push(threads.close);
    const [photo] = await samplePhotos(path.resolve(config.dataDir, "cache"));
    const image = await decodeImage(photo!);
    const here = await vision.analyzer.analyze(image);
    const there = await threads.analyzer.analyze(image);
    expect(here.length).toBeGreaterThan(0);
    expect(there.map((f) => f.detection.box)).toEqual(here.map((f) => f.detection.box));
    expect(there.map((f) => Buffer.from(f.crop.data))).toEqual(here.map((f) => Buffer.from(f.crop.data)));
    expect(threads.analyzer.detectorModelId).toBe(vision.analyzer.detectorModelId);
    const crops = here.map((f) => f.crop);
    const [a, b] = [await vision.embedder.embed(crops), await threads.embedder.embed(crops)];
    expect(b.map((v) => Array.from(v))).toEqual(a.map((v) => Array.from(v)));
    // The caller's crops are still its own after the worker took its copies.
    expect(crops[0]!.data.length).toBe(crops[0]!.width * crops[0]!.height * 3);
  });

  it("spreads frames and a batch of crops over several workers, with results in order", async () => {
    const vision = await sharedVision();
    const threads = await startVisionThreads(
      { ...config, models: { ...config.models, detectWorkers: 2, embedWorkers: 2 } },
      vision,
    );
    cleanups.push(threads.close);
    const photos = await samplePhotos(path.resolve(config.dataDir, "cache"));
    const images = await Promise.all(photos.slice(0, 3).map((p) => decodeImage(p)));
    const here = await Promise.all(images.map((i) => vision.analyzer.analyze(i)));
    const there = await Promise.all(images.map((i) => threads.analyzer.analyze(i)));
    expect(there.map((faces) => faces.length)).toEqual(here.map((faces) => faces.length));
    const crops = here.flat().map((f) => f.crop);
    expect(crops.length).toBeGreaterThan(2);
    const [a, b] = [await vision.embedder.embed(crops), await threads.embedder.embed(crops)];
    expect(b.map((v) => Array.from(v))).toEqual(a.map((v) => Array.from(v)));
  });

  it("fails the requests of a worker that dies and serves the next ones from a fresh worker", async () => {
    const vision = await sharedVision();
    const workerConfig = { ...config, models: { ...config.models, pack: vision.pack.id as "auto" } };
    const thread = new VisionThread("test", workerConfig, "analyzer");
    cleanups.push(() => thread.close());
    const analyzer = new ThreadedAnalyzer([thread], vision.analyzer.detectorModelId);
    const [photo] = await samplePhotos(path.resolve(config.dataDir, "cache"));
    const image = await decodeImage(photo!);
    await thread.start();
    const inFlight = analyzer.analyze(image);
    // What a native crash in a worker looks like from here: the thread is gone with a request pending.
    await (thread as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    await expect(inFlight).rejects.toThrow(/test worker exited/);
    const again = await analyzer.analyze(image);
    expect(again.length).toBeGreaterThan(0);
  });

  it("says which worker could not load its models", async () => {
    const broken = {
      ...config,
      models: { ...config.models, cacheDir: "/nonexistent", sources: [] as never[] },
    };
    const thread = new VisionThread("detect-align", broken, "analyzer");
    cleanups.push(() => thread.close());
    await expect(thread.start()).rejects.toThrow(/detect-align worker could not load its models/);
  });
});
