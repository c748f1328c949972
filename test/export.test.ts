import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { cosine } from "../lib/geometry/index.ts";
import { exportPerson } from "../lib/export/person-export.ts";
import { ExportJobs, type ExportJob, type ExportJobTiming } from "../lib/export/export-jobs.ts";
import { exportFixture } from "../cli/commands/bench-export.ts";
import { exportCommand } from "../cli/commands/export.ts";
import { UsageError } from "../cli/context.ts";
import { InvalidInputError } from "../lib/store/errors.ts";
import { cliActor, KeyService } from "../lib/api/keys.ts";
import { MemoryBus } from "../lib/bus/index.ts";
import { SqliteApiStore } from "../lib/store/sqlite-api-store.ts";
import { Metrics } from "../lib/telemetry/metrics.ts";
import { photoEmbedder } from "../lib/watchlist/photo.ts";
import { buildApi } from "../services/api/app.ts";
import type { ZodApp } from "../services/api/context.ts";
import { LiveFeed } from "../services/api/live.ts";
import { openApiStore } from "../lib/store/open-store.ts";
import { startDecoder, probeVideo } from "../lib/media/ffmpeg.ts";
import type { ClipStore } from "../lib/store/clip-store.ts";
import type { SqliteStore } from "../lib/store/sqlite-store.ts";
import type { Vision } from "../lib/vision/inference/vision.ts";
import { thresholdFor } from "../lib/vision/models/calibration.ts";
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
    const fixture = await exportFixture(vision, config, dir);
    ({ store, clips, clipFile } = fixture);
    alice = fixture.person;
    await store.upsertPerson({ id: "nobody", name: "Nobody", watchlistId: "default" });
  }, 300_000);

  const deps = () => ({ store, clips, vision, threshold: threshold(), maxSide: config.detect.maxSide });
  const cliConfig = () =>
    testConfig({
      "store.path": path.join(dir, "vigil.db"),
      "store.crops.dir": path.join(dir, "crops"),
    });

  /**
   * Someone beside Alice in the group clip, on no watchlist: their visit at the door is an unknown identity's,
   * kept with its clip as on a camera that records sightings. Made once, on first use, for the tests that export
   * them.
   */
  let strangerMade: Promise<{ id: string; vector: Float32Array }> | undefined;
  const stranger = () =>
    (strangerMade ??= (async () => {
      const others = (await facesIn(vision, clipFile)).filter((f) => cosine(f.vector, alice) < threshold());
      // The bystander seen in the most frames: a face the redaction has to keep, in all of them.
      const people: Float32Array[][] = [];
      for (const f of others) {
        const same = people.find((p) => cosine(p[0]!, f.vector) >= threshold());
        if (same) same.push(f.vector);
        else people.push([f.vector]);
      }
      const vector = people.sort((a, b) => b.length - a.length)[0]![0]!;
      const visit = {
        id: "s-stranger",
        trackId: "t2",
        cameraId: "door",
        startTs: T,
        endTs: T + 3000,
        faces: 10,
        modelId: vision.embedder.modelId,
        quality: { faceSize: 60, interOcular: 25, sharpness: 80, yawDeg: 0, pitchDeg: 0, detScore: 0.9 },
        match: null,
        vector,
        crop: Uint8Array.of(0xff, 0xd8),
      };
      await store.addSightings([visit]);
      const { id, created } = await store.unknowns.assignUnknown(visit, threshold());
      expect(created).toBe(true);
      await clips.put(
        {
          kind: "sightings",
          id: visit.id,
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
      return { id, vector };
    })());

  /** The API over the fixture's store and clips, with face models (`app`) and without (`bare`), and an admin key. */
  let apiKeys = 0;
  async function withApi(
    run: (api: { app: ZodApp; bare: ZodApp; headers: { authorization: string } }) => Promise<void>,
  ) {
    const apiStore = new SqliteApiStore(path.join(dir, "vigil.db"));
    const bus = new MemoryBus({ capacity: 16 });
    const feed = new LiveFeed({
      bus,
      store,
      group: "api",
      replay: 10,
      snapshots: false,
      sinkMaxAgeMs: 60_000,
    });
    const build = (withModels: boolean) =>
      buildApi({
        config: testConfig({ "store.path": path.join(dir, "vigil.db") }),
        store,
        apiStore,
        photos: photoEmbedder(vision),
        thresholdFor: () => threshold(),
        feed,
        metrics: new Metrics("export-test"),
        clips,
        ...(withModels ? { videoModels: async () => vision } : {}),
      });
    const app = await build(true);
    const bare = await build(false);
    try {
      const key = (
        await new KeyService(apiStore, apiStore).create(
          { name: `ops-${++apiKeys}`, role: "admin" },
          cliActor(),
        )
      ).key;
      await run({ app, bare, headers: { authorization: `Bearer ${key}` } });
    } finally {
      await app.close();
      await bare.close();
      await feed.stop();
      await bus.close();
      apiStore.close();
    }
  }

  /** An export started over the API, once it is no longer running. */
  async function finished(app: ZodApp, headers: { authorization: string }, id: string) {
    let job: ExportJobView | undefined;
    for (let i = 0; i < 600; i++) {
      job = (await app.inject({ url: `/v1/exports/${id}`, headers })).json();
      if (job!.state !== "running") break;
      await new Promise((r) => setTimeout(r, 100));
    }
    return job!;
  }

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
    const cli = cliConfig();
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

  it("POST /v1/exports runs the export in the background; its files come back by range; 400/503 say why not", async () => {
    await withApi(async ({ app, bare, headers }) => {
      const started = await app.inject({
        method: "POST",
        url: "/v1/exports",
        headers,
        payload: { person: "alice" },
      });
      expect(started.statusCode).toBe(202);
      const { id } = started.json() as { id: string };
      const job = await finished(app, headers, id);
      expect(job.state).toBe("done");
      const [file] = job.manifest!.files;
      const whole = await app.inject({ url: `/v1/exports/${id}/files/${file!.file}`, headers });
      expect(whole.statusCode).toBe(200);
      expect(createHash("sha256").update(whole.rawPayload).digest("hex")).toBe(file!.sha256);
      const part = await app.inject({
        url: `/v1/exports/${id}/files/${file!.file}`,
        headers: { ...headers, range: "bytes=0-99" },
      });
      expect(part.statusCode).toBe(206);
      expect((await app.inject({ method: "DELETE", url: `/v1/exports/${id}`, headers })).statusCode).toBe(
        204,
      );
      expect((await app.inject({ url: `/v1/exports/${id}`, headers })).statusCode).toBe(404);
      const none = await app.inject({
        method: "POST",
        url: "/v1/exports",
        headers,
        payload: { person: "nobody" },
      });
      expect(none.statusCode).toBe(400);
      expect(none.json().message).toMatch(/nobody has no visits/);
      const noModels = await bare.inject({
        method: "POST",
        url: "/v1/exports",
        headers,
        payload: { person: "alice" },
      });
      expect(noModels.statusCode).toBe(503);
    });
  }, 300_000);
  it("a replica that stops hands its running export to the next replica asked about it, which runs it to the end", async () => {
    // Two API replicas: their own job lists, one crop store.
    const replica = (timing: Partial<ExportJobTiming> = {}) =>
      new ExportJobs(clips.crops, async () => deps(), Date.now, { claimSettleMs: 50, ...timing });
    const record = async (id: string) => {
      const bytes = await clips.crops.get(`exports/${id}/job.json`);
      return (
        bytes && (JSON.parse(new TextDecoder().decode(bytes)) as { attempt: number; heartbeatTs: number })
      );
    };
    const first = replica();
    const second = replica();
    const { id, done } = await first.start({ person: "alice", redact: "others" });
    // Running with a fresh heartbeat: the second replica reports it and leaves it to the first.
    expect(await second.get(id)).toMatchObject({ id, state: "running" });
    expect(await record(id)).toMatchObject({ attempt: 1, state: "running" });
    // The first shuts down mid-export: its ffmpeg stops at the next frame and it publishes nothing.
    await first.close();
    await done;
    expect(await clips.crops.get(`exports/${id}/manifest.json`)).toBeUndefined();
    let job = await second.get(id);
    for (let i = 0; i < 1200 && job?.state === "running"; i++) {
      await new Promise((r) => setTimeout(r, 100));
      job = await second.get(id);
    }
    expect(job?.state).toBe("done");
    const [file] = (job as Extract<ExportJob, { state: "done" }>).manifest.files;
    const bytes = await second.file(id, file!.file);
    expect(createHash("sha256").update(bytes!).digest("hex")).toBe(file!.sha256);
    expect(file!.redaction!.blurred).toBeGreaterThan(0);
    // Done, the job's record is gone; the first replica, restarted, reads the same result.
    const keys: string[] = [];
    for await (const k of clips.crops.list(`exports/${id}/`)) keys.push(k.key);
    expect(keys.sort()).toEqual([`exports/${id}/${file!.file}`, `exports/${id}/manifest.json`].sort());
    expect(await replica().get(id)).toMatchObject({ id, state: "done" });
    expect(await second.delete(id)).toBe(true);

    // An export whose replicas keep stopping is failed, not run for ever; its record can then be deleted.
    const third = replica();
    const started = await third.start({ person: "alice", redact: "others" });
    await third.close();
    await started.done;
    const last = replica({ maxAttempts: 1 });
    expect(await last.get(started.id)).toMatchObject({
      state: "failed",
      error: expect.stringMatching(/its replica stopped while running it, 1 times/),
    });
    expect(await replica().get(started.id)).toMatchObject({ state: "failed" });
    expect(await last.delete(started.id)).toBe(true);
    expect(await last.get(started.id)).toBeUndefined();

    // A replica that was only slow is superseded, not doubled: one whose clock finds its heartbeat stale takes the
    // job, and the slow one stops when its next beat finds the record no longer its own, releasing nothing.
    const slow = replica({ heartbeatMs: 100 });
    const ahead = new ExportJobs(
      clips.crops,
      async () => deps(),
      () => Date.now() + 60_000,
      {
        claimSettleMs: 50,
      },
    );
    const slowJob = await slow.start({ person: "alice", redact: "others" });
    expect(await ahead.get(slowJob.id)).toMatchObject({ state: "running" });
    await slowJob.done;
    const after = await record(slowJob.id);
    // Unless the new owner already finished (its record then deleted), the record is its claim, still held.
    if (after) expect(after).toMatchObject({ attempt: 2, state: "running", heartbeatTs: expect.any(Number) });
    expect(after?.heartbeatTs ?? 1).toBeGreaterThan(0);
    let taken = await ahead.get(slowJob.id);
    for (let i = 0; i < 1200 && taken?.state === "running"; i++) {
      await new Promise((r) => setTimeout(r, 100));
      taken = await ahead.get(slowJob.id);
    }
    expect(taken?.state).toBe("done");
    expect(await ahead.delete(slowJob.id)).toBe(true);
  }, 300_000);

  it("vigil export --person <unknown-…> --redact others: the stranger's clip, theirs the only face left, Alice's masked", async () => {
    const { id, vector } = await stranger();
    const out = path.join(tempDir("vigil-export-unknown-"), "stranger");
    const manifest = await exportCommand(cliConfig(), { person: id, redact: "others", out, json: true });
    expect(manifest).toMatchObject({ person: id, kind: "unknown", visits: 1, missing: [] });
    expect(manifest.files).toHaveLength(1);
    const [file] = manifest.files;
    const written = readFileSync(path.join(out, file!.file));
    expect(file).toMatchObject({
      cameraId: "door",
      clip: { kind: "sightings", id: "s-stranger" },
      sightings: ["s-stranger"],
      bytes: written.length,
    });
    expect(file!.sha256).toBe(createHash("sha256").update(written).digest("hex"));
    expect(JSON.parse(readFileSync(path.join(out, "manifest.json"), "utf8"))).toEqual(manifest);
    const after = await facesIn(vision, path.join(out, file!.file), 1);

    // Their face is told from the others' by the identity's centroid (they have no enrolled photo): every face a
    // detector still finds is theirs, and the watchlist person beside them is masked like any bystander.
    expect(after.filter((f) => cosine(f.vector, vector) < threshold())).toEqual([]);
    expect(after.filter((f) => cosine(f.vector, alice) >= threshold())).toEqual([]);
    expect(new Set(after.map((f) => f.frame)).size).toBeGreaterThan(file!.redaction!.frames * 0.8);
    expect(file!.redaction!.personFrames).toBeGreaterThan(file!.redaction!.frames * 0.8);
    expect(file!.redaction!.blurred).toBeGreaterThan(0);
  }, 300_000);

  it("POST /v1/exports exports an unknown identity too; 400 for no visits in the range, 404 for no such identity", async () => {
    const { id } = await stranger();
    await withApi(async ({ app, headers }) => {
      const started = await app.inject({
        method: "POST",
        url: "/v1/exports",
        headers,
        payload: { person: id },
      });
      expect(started.statusCode).toBe(202);
      const job = await finished(app, headers, started.json().id);
      expect(job.state).toBe("done");
      expect(job.manifest).toMatchObject({ person: id, kind: "unknown", redact: "others", visits: 1 });
      const [file] = job.manifest!.files;
      expect(file).toMatchObject({ sightings: ["s-stranger"] });
      expect(file!.redaction!.personFrames).toBeGreaterThan(0);
      const whole = await app.inject({
        url: `/v1/exports/${started.json().id}/files/${file!.file}`,
        headers,
      });
      expect(createHash("sha256").update(whole.rawPayload).digest("hex")).toBe(file!.sha256);

      const late = await app.inject({
        method: "POST",
        url: "/v1/exports",
        headers,
        payload: { person: id, from: new Date(T + 60_000).toISOString() },
      });
      expect(late.statusCode).toBe(400);
      expect(late.json().message).toMatch(new RegExp(`^${id} has no visits between`));
      const ghost = await app.inject({
        method: "POST",
        url: "/v1/exports",
        headers,
        payload: { person: "unknown-000000000000" },
      });
      expect(ghost.statusCode).toBe(404);
      expect(ghost.json().message).toMatch(/no unknown identity unknown-000000000000/);
    });
  }, 300_000);

  it("refuses an unknown identity with no visits in the range as it does a person, and says which visit has no clip", async () => {
    const { id, vector } = await stranger();
    const out = () => path.join(tempDir("vigil-export-out-"), "x");
    const from = T + 60_000;
    const refusal = (person: string) =>
      exportPerson(deps(), { person, from, out: out(), redact: "others" }).then(
        () => undefined,
        (err: unknown) => err as Error,
      );
    const theirs = await refusal(id);
    const hers = await refusal("nobody");
    expect(theirs).toBeInstanceOf(InvalidInputError);
    expect(hers).toBeInstanceOf(InvalidInputError);
    expect(theirs!.message).toBe(hers!.message.replace("nobody", id));
    // The CLI turns it into the same usage error (exit 1, one line) as for a person, and audits the attempt.
    await expect(
      exportCommand(cliConfig(), {
        person: id,
        from: new Date(from).toISOString(),
        redact: "none",
        out: out(),
      }),
    ).rejects.toThrow(new UsageError(theirs!.message));
    await expect(
      exportCommand(cliConfig(), { person: "unknown-000000000000", redact: "none", out: out() }),
    ).rejects.toThrow(UsageError);
    await expect(
      exportPerson(deps(), { person: "unknown-000000000000", out: out(), redact: "others" }),
    ).rejects.toThrow(/no unknown identity unknown-000000000000/);

    // A later visit of theirs on a camera that keeps no clips: planned apart from any alert (strangers raise none).
    const yard = {
      ...(await store.getSighting("s-stranger"))!,
      id: "s-stranger-yard",
      trackId: "t3",
      cameraId: "yard",
      startTs: T + 600_000,
      endTs: T + 601_000,
      vector,
      crop: Uint8Array.of(1),
    };
    delete yard.unknownId;
    await store.addSightings([yard]);
    expect((await store.unknowns.assignUnknown(yard, threshold())).id).toBe(id);
    await expect(
      exportPerson(deps(), { person: id, from: T + 500_000, out: out(), redact: "others" }),
    ).rejects.toThrow(/1 visit\(s\).*none has a clip \(no clip: camera yard/);
    const both = await exportPerson(deps(), { person: id, out: out(), redact: "none" });
    expect(both).toMatchObject({ kind: "unknown", visits: 2, missing: [{ sighting: "s-stranger-yard" }] });
    expect(both.files.map((f) => f.sightings)).toEqual([["s-stranger"]]);

    const audit = await openApiStore(cliConfig());
    try {
      const entries = (await audit.listAudit({ limit: 50 })).items.filter(
        (e) => e.action === "export.person",
      );
      expect(entries.map((e) => [e.target, e.outcome])).toEqual(
        expect.arrayContaining([
          [id, "ok"],
          [id, "failed"],
        ]),
      );
    } finally {
      await audit.close();
    }
  }, 120_000);
});

/** GET /v1/exports/{id} as the tests read it. */
interface ExportJobView {
  state: string;
  manifest?: {
    person: string;
    files: {
      file: string;
      sha256: string;
      sightings: string[];
      redaction: { personFrames: number } | null;
    }[];
  };
}
