import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { cosine } from "../lib/geometry/index.ts";
import { exportPerson } from "../lib/export/person-export.ts";
import { exportCommand } from "../cli/commands/export.ts";
import { UsageError } from "../cli/context.ts";
import { openApiStore } from "../lib/store/open-store.ts";
import { startDecoder, probeVideo } from "../lib/media/ffmpeg.ts";
import { cropLargestFace, samplePhotos, slideshowVideo } from "../lib/media/sample-media.ts";
import { ClipStore } from "../lib/store/clip-store.ts";
import { FolderCropStore } from "../lib/store/crop-store.ts";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import type { Vision } from "../lib/vision/inference/vision.ts";
import { thresholdFor } from "../lib/vision/models/calibration.ts";
import { decodeImage } from "../lib/vision/pixels/image.ts";
import { sharedVision, tempDir, testConfig } from "./helpers.ts";

const T = Date.UTC(2026, 11, 6, 9);
const config = testConfig();

/**
 * Every face the detector finds in every `step`-th frame of a video that the live path would take for one (its
 * live quality gate passes: a detection of 0.6 on a patch of clothing, sharpness 3, is not a bystander's face),
 * with its embedding.
 */
async function facesIn(vision: Vision, file: string, step = 3) {
  const probe = await probeVideo(file);
  const decoder = startDecoder(file, { fps: probe.fps ?? 25, width: probe.width, height: probe.height });
  const out: { frame: number; vector: Float32Array }[] = [];
  for await (const f of decoder.frames) {
    if (f.index % step === 0) {
      const frame = { format: "yuv420p" as const, width: f.width, height: f.height, data: f.data };
      const faces = (await vision.analyzer.analyze(frame, { maxSide: config.detect.maxSide })).filter(
        (x) => x.quality.liveReasons.length === 0,
      );
      const vectors = faces.length ? await vision.embedder.embed(faces.map((x) => x.crop)) : [];
      for (const v of vectors) out.push({ frame: f.index, vector: v });
    }
    f.release();
  }
  await decoder.exited;
  return out;
}

describe("vigil export --redact others (real models, real ffmpeg)", () => {
  let vision: Vision;
  let store: SqliteStore;
  let clips: ClipStore;
  let alice: Float32Array;
  let clipFile: string;
  let dir: string;
  const threshold = () => thresholdFor(vision.embedder.modelId, config);

  beforeAll(async () => {
    vision = await sharedVision();
    dir = tempDir("vigil-export-");
    const photos = await samplePhotos(path.resolve(".vigil/cache"));
    // Alice: the largest face of a group photo; the clip is that group, so it holds her and others.
    const aliceFile = path.join(dir, "alice.jpg");
    await cropLargestFace(vision, photos[0]!, aliceFile);
    const [face] = await vision.analyzer.analyze(await decodeImage(readFileSync(aliceFile), "alice.jpg"), {
      maxSide: config.detect.maxSide,
    });
    alice = (await vision.embedder.embed([face!.crop]))[0]!;
    clipFile = path.join(dir, "door.mp4");
    await slideshowVideo([photos[0]!, photos[0]!], clipFile, { secondsEach: 2, width: 1280, height: 720 });
    store = new SqliteStore(path.join(dir, "vigil.db"));
    await store.upsertPerson({ id: "alice", name: "Alice", watchlistId: "default" });
    await store.upsertPerson({ id: "nobody", name: "Nobody", watchlistId: "default" });
    await store.addFace({
      faceId: "alice:alice.jpg",
      personId: "alice",
      modelId: vision.embedder.modelId,
      vector: alice!,
      source: "alice.jpg",
    });
    await store.addSightings([
      {
        id: "s-door",
        trackId: "t1",
        cameraId: "door",
        startTs: T,
        endTs: T + 3000,
        faces: 10,
        modelId: vision.embedder.modelId,
        quality: { faceSize: 90, interOcular: 40, sharpness: 120, yawDeg: 0, pitchDeg: 0, detScore: 0.95 },
        match: { personId: "alice", name: "Alice", score: 0.8 },
        vector: alice!,
        crop: Uint8Array.of(0xff, 0xd8),
      },
    ]);
    clips = new ClipStore(new FolderCropStore(path.join(dir, "crops")));
    await clips.put(
      {
        kind: "sightings",
        id: "s-door",
        cameraId: "door",
        ts: T,
        start: T - 500,
        end: T + 3500,
        from: T - 2000,
        to: T + 5000,
        short: null,
      },
      new Uint8Array(readFileSync(clipFile)),
    );
  }, 300_000);

  const deps = () => ({ store, clips, vision, threshold: threshold(), maxSide: config.detect.maxSide });

  it("leaves only the person's face for a detector to find, in every frame, with a manifest of hashes", async () => {
    const before = await facesIn(vision, clipFile);
    const others = before.filter((f) => cosine(f.vector, alice) < threshold());
    // The footage really shows other people beside her.
    expect(others.length).toBeGreaterThan(5);
    const out = path.join(tempDir("vigil-export-out-"), "alice");
    const manifest = await exportPerson(deps(), { person: "alice", out, redact: "others" });
    expect(manifest).toMatchObject({ person: "alice", kind: "watchlist", visits: 1, missing: [] });
    expect(manifest.files).toHaveLength(1);
    const [file] = manifest.files;
    const written = readFileSync(path.join(out, file!.file));
    expect(file).toMatchObject({ cameraId: "door", sightings: ["s-door"], bytes: written.length });
    expect(file!.sha256).toBe(createHash("sha256").update(written).digest("hex"));
    expect(JSON.parse(readFileSync(path.join(out, "manifest.json"), "utf8"))).toEqual(manifest);
    const after = await facesIn(vision, path.join(out, file!.file), 1);

    const unblurred = after.filter((f) => cosine(f.vector, alice) < threshold());
    expect(unblurred).toEqual([]);
    // She is still there to be seen in most frames.
    expect(new Set(after.map((f) => f.frame)).size).toBeGreaterThan(file!.redaction!.frames * 0.8);
    expect(file!.redaction!.blurred).toBeGreaterThan(0);
    console.log(
      `export: ${file!.redaction!.frames} frames, ${file!.redaction!.blurred} faces blurred, CPU ${manifest.cpuPerVideoSecond!.toFixed(2)} s per video second`,
    );
  }, 300_000);

  it("refuses a person with no visits, and one whose visits have no clip, saying why", async () => {
    const out = () => path.join(tempDir("vigil-export-out-"), "x");
    await expect(exportPerson(deps(), { person: "nobody", out: out(), redact: "others" })).rejects.toThrow(
      /nobody has no visits between/,
    );
    await expect(
      exportPerson(deps(), { person: "alice", from: T + 60_000, out: out(), redact: "others" }),
    ).rejects.toThrow(/no visits/);
    await store.addSightings([
      {
        ...(await store.getSighting("s-door"))!,
        id: "s-yard",
        cameraId: "yard",
        startTs: T + 600_000,
        endTs: T + 601_000,
        crop: Uint8Array.of(1),
      },
    ]);
    await expect(
      exportPerson(deps(), { person: "alice", from: T + 500_000, out: out(), redact: "others" }),
    ).rejects.toThrow(/1 visit\(s\).*none has a clip/);
    await expect(exportPerson(deps(), { person: "ghost", out: out(), redact: "others" })).rejects.toThrow(
      /no person ghost/,
    );
  }, 60_000);

  it("vigil export: the clips as recorded with --redact none, a usage error for no visits, audited", async () => {
    const cli = testConfig({
      "store.path": path.join(dir, "vigil.db"),
      "store.crops.dir": path.join(dir, "crops"),
    });
    const out = path.join(tempDir("vigil-export-cli-"), "as-recorded");
    const manifest = await exportCommand(cli, { person: "alice", redact: "none", out, json: true });
    expect(manifest.files[0]!.sha256).toBe(createHash("sha256").update(readFileSync(clipFile)).digest("hex"));
    expect(manifest.files[0]!.redaction).toBeNull();
    await expect(
      exportCommand(cli, { person: "nobody", redact: "none", out: path.join(out, "..", "n") }),
    ).rejects.toThrow(UsageError);
    await expect(exportCommand(cli, { person: "alice", redact: "everyone", out })).rejects.toThrow(
      /--redact/,
    );
    const audit = await openApiStore(cli);
    try {
      const entries = (await audit.listAudit({ limit: 20 })).items.filter(
        (e) => e.action === "export.person",
      );
      expect(entries.map((e) => [e.target, e.outcome])).toEqual(
        expect.arrayContaining([
          ["alice", "ok"],
          ["nobody", "failed"],
        ]),
      );
    } finally {
      await audit.close();
    }
  }, 60_000);
});
