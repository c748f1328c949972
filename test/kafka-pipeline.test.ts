import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { KafkaBus } from "../lib/bus/kafka-bus.ts";
import {
  AlertContract,
  DeadLetterContract,
  EmbeddingContract,
  FrameContract,
  Topics,
} from "../lib/contracts/index.ts";
import { cropLargestFace, samplePhotos, slideshowVideo } from "../lib/media/sample-media.ts";
import type { ServiceProcess } from "../lib/testing/service-process.ts";
import { collect, until, useKafka } from "./kafka-helpers.ts";
import { metricSum } from "../cli/commands/bench-pipeline.ts";
import { alignedSampleFaces, faceRecord } from "../lib/testing/aligned-faces.ts";
import { sharedVision, tempDir, testConfig } from "./helpers.ts";

/**
 * The scale-out path for real: every stage its own OS process (`vigil serve <stage>`) over a real Kafka broker,
 * each test in its own topic namespace on the run's shared broker.
 */
const harness = useKafka();
const deployment = harness.deployment;

describe("the four stages as separate processes over a real Kafka broker", () => {
  it("(a) a video in, the watchlisted person's alert out; (e) a malformed record goes to vigil.dlq and the stage keeps going", async (ctx) => {
    if (!harness.kafka()) return ctx.skip();
    const vision = await sharedVision();
    const media = tempDir();
    const photos = await samplePhotos(path.resolve(".vigil/cache"));
    const video = path.join(media, "slideshow.mp4");
    await slideshowVideo([photos[0]!, photos[1]!, photos[2]!, photos[0]!], video, {
      secondsEach: 1.2,
      width: 960,
      height: 540,
    });
    const face = path.join(media, "alice.jpg");
    await cropLargestFace(vision, photos[0]!, face);
    const d = await deployment({ cameras: [{ id: "door", url: video }] });
    const enrol = spawnSync(
      process.execPath,
      ["bin/vigil.js", "--config", d.configFile, "enroll", "--person", "alice", face],
      { encoding: "utf8", timeout: 120_000 },
    );
    expect(enrol.status, enrol.stderr).toBe(0);

    const alerts = await collect(d.bus, Topics.alerts);
    const dead = await collect(d.bus, Topics.dlq);
    const frames = await collect(d.bus, Topics.frames);
    const stages = ["match", "embed", "detect-align"].map((s) => d.start(s));
    await Promise.all(stages.map((s) => s.ready()));
    // A record no stage can read, before the real ones: dead-lettered with the reason, nothing else held up.
    await d.bus.publish(Topics.faces, [{ key: "door", value: new TextEncoder().encode("not a face") }]);
    const ingest = d.start("ingest");
    // The file ends, so ingest finishes by itself.
    expect((await ingest.exited).code).toBe(0);
    const hit = await until("an alert for alice", () =>
      alerts.records.map((r) => AlertContract.decode(r.value)).find((a) => a.personId === "alice"),
    );
    expect(hit).toMatchObject({ personId: "alice", cameraId: "door" });
    expect(hit.score).toBeGreaterThanOrEqual(hit.threshold);
    // On Kafka, ingest sends JPEG (bench frames: ~40× fewer bytes than raw yuv420p).
    expect(new Set(frames.records.map((r) => FrameContract.decode(r.value).format))).toEqual(
      new Set(["jpeg"]),
    );
    const letter = await until("a dead letter", () => dead.records[0]);
    const d0 = DeadLetterContract.decode(letter.value);
    expect(d0.sourceTopic).toBe(Topics.faces);
    expect(d0.reason).toMatch(/malformed face message/);
    expect(Buffer.from(d0.original).toString()).toBe("not a face");
    // Once per camera within the cool-down, though alice is shown twice.
    await new Promise((r) => setTimeout(r, 3000));
    const forAlice = alerts.records
      .map((r) => AlertContract.decode(r.value))
      .filter((a) => a.personId === "alice");
    expect(new Set(forAlice.map((a) => a.alertId)).size).toBe(1);
    for (const s of stages) expect((await s.kill("SIGTERM")).code).toBe(0);
    await alerts.stop();
    await dead.stop();
    await frames.stop();
    await (d.raw as KafkaBus).close();
  });

  it("(f) two embed processes in one group share the faces; the second joining rebalances with no face lost", async (ctx) => {
    if (!harness.kafka()) return ctx.skip();
    const samples = await alignedSampleFaces(testConfig(), await sharedVision());
    const d = await deployment();
    const out = await collect(d.bus, Topics.embeddings);
    const first = d.start("embed");
    await first.ready();
    const total = 160;
    const sent: string[] = [];
    let second: ServiceProcess | undefined;
    for (let chunk = 0; chunk < 16; chunk++) {
      const records = Array.from({ length: 10 }, (_, k) => {
        const i = chunk * 10 + k;
        // Twelve cameras, so both partitions carry faces.
        return faceRecord(samples[i % samples.length]!, `cam-${i % 12}`, i, Date.now());
      });
      await d.bus.publish(Topics.faces, records);
      sent.push(...records.map((_, k) => `cam-${(chunk * 10 + k) % 12}:${chunk * 10 + k}:0`));
      if (chunk === 4) second = d.start("embed");
      await new Promise((r) => setTimeout(r, 150));
    }
    await second!.ready();
    const faceIds = () => new Set(out.records.map((r) => EmbeddingContract.decode(r.value).faceId));
    await until("every face embedded", () => faceIds().size === total);
    expect([...faceIds()].sort()).toEqual([...sent].sort());
    // Both members did work after the rebalance gave each a partition.
    for (const p of [first, second!]) {
      expect(await p.metrics()).toMatch(/vigil_batch_size_count\{[^}]*stage="embed"[^}]*\} [1-9]/);
    }
    for (const p of [first, second!]) expect((await p.kill("SIGTERM")).code).toBe(0);
    await out.stop();
    await d.raw.close();
  });

  it("(d) the broker stopped and restarted mid-stream: the pipeline resumes by itself and the camera keeps its place", async (ctx) => {
    const kafka = harness.kafka();
    if (!kafka?.controllable) return ctx.skip();
    const photos = await samplePhotos(path.resolve(".vigil/cache"));
    const video = path.join(tempDir(), "slideshow.mp4");
    // 10 s at 5 fps: 50 frames, each of which must reach detect-align once the broker is back.
    await slideshowVideo(photos.slice(0, 5), video, { secondsEach: 2, width: 960, height: 540 });
    const d = await deployment({ cameras: [{ id: "door", url: video }] });
    const frames = await collect(d.bus, Topics.frames);
    const stages = ["match", "embed", "detect-align"].map((s) => d.start(s));
    await Promise.all(stages.map((s) => s.ready()));
    const detect = stages[2]!;
    const processed = async () => metricSum(await detect.metrics(), "vigil_frames_processed_total");
    const ingest = d.start("ingest");
    await until("ten frames through detection", async () => (await processed()) >= 10 || undefined);
    await kafka.stop();
    await new Promise((r) => setTimeout(r, 2000));
    await kafka.start();
    expect((await ingest.exited).code).toBe(0);
    // Every frame of the file once: the camera neither restarted nor skipped while the broker was away.
    const seqs = await until("all 50 frames on the topic", () => {
      const set = new Set(frames.records.map((r) => FrameContract.decode(r.value).seq));
      return set.size >= 50 ? set : undefined;
    });
    expect(seqs.size).toBe(50);
    await until("detection on all 50 frames", async () => (await processed()) >= 50 || undefined);
    for (const s of stages) expect((await s.kill("SIGTERM")).code).toBe(0);
    await frames.stop();
    await d.raw.close();
  });

  it("a person enrolled, then removed, from another process takes effect in the running services within seconds", async (ctx) => {
    if (!harness.kafka()) return ctx.skip();
    const vision = await sharedVision();
    const media = tempDir();
    const photos = await samplePhotos(path.resolve(".vigil/cache"));
    const video = path.join(media, "loop.mp4");
    await slideshowVideo([photos[0]!, photos[1]!], video, { secondsEach: 1, width: 960, height: 540 });
    const face = path.join(media, "alice.jpg");
    await cropLargestFace(vision, photos[0]!, face);
    const d = await deployment({
      cameras: [{ id: "door", url: video, loop: true }],
      match: { alertCooldownS: 1 },
    });
    const alerts = await collect(d.bus, Topics.alerts);
    const stages = ["match", "embed", "detect-align", "ingest"].map((s) => d.start(s));
    await Promise.all(stages.map((s) => s.ready()));
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, ["bin/vigil.js", "--config", d.configFile, ...args], {
        encoding: "utf8",
        timeout: 120_000,
      });
    const aliceAlerts = () =>
      alerts.records.map((r) => AlertContract.decode(r.value)).filter((a) => a.personId === "alice");
    await new Promise((r) => setTimeout(r, 3000));
    expect(aliceAlerts()).toEqual([]);
    const enrolled = Date.now();
    expect(cli("enroll", "--person", "alice", face).status).toBe(0);
    await until("an alert for alice after her enrolment", () => aliceAlerts().length > 0, 20_000);
    expect(Date.now() - enrolled).toBeLessThan(20_000);
    expect(cli("remove", "--person", "alice").status).toBe(0);
    const removed = Date.now();
    await new Promise((r) => setTimeout(r, 4000));
    // Alerts raised after the removal took effect (2 s of grace for faces already in flight). By when match
    // published them: a looping file's capture times run on its own media clock.
    const after = alerts.records.filter(
      (r) => r.timestamp > removed + 2000 && AlertContract.decode(r.value).personId === "alice",
    );
    expect(after).toEqual([]);
    for (const s of stages) expect((await s.kill("SIGTERM")).code).toBe(0);
    await alerts.stop();
    await d.raw.close();
  });
});
