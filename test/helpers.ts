import { expect } from "vitest";
import { existsSync, mkdirSync, mkdtempSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { loadConfig, type Config } from "../lib/config/index.ts";
import { scanIdentities } from "../lib/eval/faces.ts";
import { loadVision, type Vision } from "../lib/vision/inference/vision.ts";
import type { VigilEvent } from "../lib/events/events.ts";
import { cropLargestFace, samplePhotos, slideshowVideo } from "../lib/media/sample-media.ts";
import type { Sighting } from "../lib/store/sighting-store.ts";
import type { Page } from "../lib/store/paging.ts";
import type { MatchOptions } from "../services/match/stage.ts";

/** The development data beside the project (../shared/data), or VIGIL_SHARED_DATA. */
export function sharedData(...parts: string[]): string | undefined {
  const root = process.env.VIGIL_SHARED_DATA ?? path.resolve("../shared/data");
  const p = path.join(root, ...parts);
  return existsSync(p) ? p : undefined;
}

/** Prints why a suite is skipped, so a skipped test is never silent. */
export function skipReason(what: string, needed: string): string {
  const reason = `skipping ${what}: ${needed} not found (set VIGIL_SHARED_DATA to the shared data folder)`;
  console.log(reason);
  return reason;
}

export const tempDir = (prefix = "vigil-test-") => mkdtempSync(path.join(tmpdir(), prefix));

/**
 * The first `count` identities of a folder-per-identity set (sorted), linked into a folder of their own: the
 * evaluations' real path on a slice that takes seconds rather than minutes.
 */
export function identitySlice(images: string, count: number): string {
  const dir = tempDir("vigil-slice-");
  for (const id of scanIdentities(images).slice(0, count)) {
    mkdirSync(path.join(dir, id.id));
    for (const f of id.files) symlinkSync(path.join(images, f), path.join(dir, f));
  }
  return dir;
}

/** Tests share the project's model and npm caches (pulled once by setup), nothing else. */
/**
 * The tests' config. `VIGIL_TEST_CONFIG` names a config file laid under it, so the suite's accuracy tests can
 * judge another model pack (a declared one, e.g. a fine-tuned embedder) with the checks they apply to the default.
 */
export function testConfig(overrides: Record<string, unknown> = {}): Config {
  return loadConfig({
    file: process.env.VIGIL_TEST_CONFIG,
    env: {
      ...(process.env.VIGIL_MODEL_MIRROR ? { VIGIL_MODEL_MIRROR: process.env.VIGIL_MODEL_MIRROR } : {}),
    },
    overrides: {
      dataDir: path.resolve(".vigil"),
      "store.path": path.join(tempDir("vigil-store-"), "vigil.db"),
      "log.level": "warn",
      ...overrides,
    },
  });
}

let vision: Promise<Vision> | undefined;
export function sharedVision(): Promise<Vision> {
  vision ??= loadVision(testConfig());
  return vision;
}

export function collect() {
  const events: VigilEvent[] = [];
  return { events, emit: (e: VigilEvent) => void events.push(e) };
}

export const ofType = <T extends VigilEvent["type"]>(events: VigilEvent[], type: T) =>
  events.filter((e): e is Extract<VigilEvent, { type: T }> => e.type === type);

/**
 * A stored sighting as the match stage writes one, for store and service tests: a second-long track on "door"
 * of model "m1" with good quality, no match and a tiny crop; `s` sets the rest and overrides any of it.
 */
export const sightingOf = (s: Pick<Sighting, "id" | "vector"> & Partial<Sighting>): Sighting => ({
  trackId: `t-${s.id}`,
  cameraId: "door",
  startTs: (s.endTs ?? 1000) - 1000,
  endTs: (s.startTs ?? 0) + 1000,
  faces: 3,
  modelId: "m1",
  quality: { faceSize: 80, interOcular: 30, sharpness: 100, yawDeg: 0, pitchDeg: 0, detScore: 0.9 },
  match: null,
  crop: Uint8Array.of(1, 2, 3),
  ...s,
});

/**
 * The always-available scene for `vigil run` tests: a clip of the npm sample photos in `order` (indexes, 1.2 s
 * each at 960×540) and a watchlist folder holding alice, the largest face of photo 0, cropped by the one-frame
 * path as enrolment crops.
 */
export async function aliceScene(
  dir: string,
  order: number[],
): Promise<{ video: string; watchlist: string }> {
  const photos = await samplePhotos(path.resolve(".vigil/cache"));
  const video = path.join(dir, "slideshow.mp4");
  await slideshowVideo(
    order.map((k) => photos[k]!),
    video,
    { secondsEach: 1.2, width: 960, height: 540 },
  );
  const watchlist = path.join(dir, "watchlist");
  await cropLargestFace(await sharedVision(), photos[0]!, path.join(watchlist, "alice", "face.jpg"));
  return { video, watchlist };
}

/**
 * `vigil run` in this process over an alice scene of `order`: its events, summary and alerts, once the watchlist
 * photo is known to have been enrolled (what every such test needs before anything it says about alerts).
 */
export async function runAliceScene(config: Config, vision: Vision, order: number[]) {
  // Loaded here, not at the top: most tests that use these helpers never run the pipeline.
  const { runEmbedded } = await import("../cli/commands/run.ts");
  const { video, watchlist } = await aliceScene(tempDir(), order);
  const { events, emit } = collect();
  const { summary } = await runEmbedded(
    config,
    vision,
    { source: [video], watchlist, events: "ndjson" },
    emit,
  );
  expect(ofType(events, "enrol")).toEqual([expect.objectContaining({ personId: "alice", ok: true })]);
  return { events, summary, alerts: ofType(events, "alert") };
}

/**
 * A match stage's options for tests that drive MatchStage directly: a fixed threshold, every look trusted, and the
 * tracker and cool-down the config's defaults stand for; `extra` overrides any of them.
 */
export function testMatchOptions(threshold: number, extra: Partial<MatchOptions> = {}): MatchOptions {
  return {
    thresholdFor: () => threshold,
    minTrustFor: () => 0,
    recognisabilityFor: () => undefined,
    alertCooldownMs: 30_000,
    tracker: { timeoutMs: 3000, similarity: 0.3, iou: 0.1, reacquire: 0.55 },
    exclusionSimilarity: 0.5,
    ...extra,
  };
}

/** Every page of a listing, checking each is full but the last. */
export async function allPages<T>(limit: number, page: (cursor?: string) => Promise<Page<T>>): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 100; i++) {
    const p = await page(cursor);
    out.push(...p.items);
    if (p.nextCursor === null) return out;
    expect(p.items).toHaveLength(limit);
    cursor = p.nextCursor;
  }
  throw new Error("paging did not end");
}
