import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import type { KafkaBus } from "../../lib/bus/kafka-bus.ts";
import { NamespacedBus } from "../../lib/bus/namespaced-bus.ts";
import { kafkaOptions } from "../../lib/bus/open-bus.ts";
import type { Config } from "../../lib/config/index.ts";
import { AlertContract, TopicTable, Topics } from "../../lib/contracts/index.ts";
import { benchFaceVideo, cropLargestFace } from "../../lib/media/sample-media.ts";
import { FolderCropStore } from "../../lib/store/crop-store.ts";
import { QdrantStore } from "../../lib/store/qdrant-store.ts";
import { SqliteStore } from "../../lib/store/sqlite-store.ts";
import { progress } from "../../lib/telemetry/progress.ts";
import { alignedSampleFaces, faceRecord } from "../../lib/testing/aligned-faces.ts";
import { KafkaBroker } from "../../lib/testing/kafka/broker.ts";
import { QdrantServer, qdrantUnavailableReason } from "../../lib/testing/qdrant/server.ts";
import { cameraStream } from "../../lib/testing/rtsp/media.ts";
import { RtspTestServer, type MountSpec } from "../../lib/testing/rtsp/server.ts";
import { ServiceProcess } from "../../lib/testing/service-process.ts";
import { tempDirFor } from "../../lib/util/temp.ts";
import type { Vision } from "../../lib/vision/inference/vision.ts";
import { enrolPhotos } from "../../lib/watchlist/enrol.ts";
import { percentile } from "./bench-vision.ts";

export interface PipelineBenchResult {
  brokers: string;
  /** The store the match stage (and the bench's enrolment) used: the embedded SQLite file, or Qdrant. */
  store: "embedded" | "qdrant";
  /**
   * Qdrant only: the nodes used, whether they were a local server started for the run (and stopped after it) or
   * given, and the prefix of the run's collections (left on a given server).
   */
  qdrant: { url: string; startedForRun: boolean; prefix: string } | null;
  /** Embed scaling: faces/s of one embed process, then of two in one group, on pre-published faces. */
  facesPerSecond1: number;
  facesPerSecond2: number;
  embedScaling: number;
  /** End to end over Kafka, every stage its own process. */
  cameras: number;
  fps: number;
  seconds: number;
  framesOffered: number;
  framesProcessed: number;
  processedRatio: number;
  framesStale: number;
  alerts: number;
  p50AlertMs: number;
  p95AlertMs: number;
  /**
   * What the store holds after the end-to-end run, warm-up included, counted in the store itself: sightings (a
   * track's, written when it ends: a face that never leaves the frame writes none until it does) and alerts.
   */
  stored: { sightings: number; alerts: number };
}

export interface PipelineBenchOptions {
  brokers?: string[];
  cameras: number;
  seconds: number;
  windowS: number;
  faces: number;
  /** The embedded store (default), or the Qdrant store for the match stage. */
  store?: "embedded" | "qdrant";
  /** Qdrant nodes to use; without them a local Qdrant (../shared/qdrant) is started for the run and stopped. */
  qdrantUrl?: string[];
  qdrantApiKey?: string;
  /** The cameras' video, looped (default: the talking-head clip, see benchFaceVideo). */
  video?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sums a counter (or gauge) over its label sets in a Prometheus text scrape. */
export function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== "{" && rest[0] !== " ") continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

/** One namespace on the broker: its topics, a config file its services share, and a bus to watch it with. */
export async function namespace(
  config: Config,
  brokers: string[],
  name: string,
  overrides: Record<string, unknown>,
) {
  const prefix = `bench-${name}-${Date.now().toString(36)}.`;
  const dir = tempDirFor(config, `bench-pipeline-${name}`);
  const { KafkaBus } = await import("../../lib/bus/kafka-bus.ts");
  const raw: KafkaBus = new KafkaBus(
    kafkaOptions({ ...config, bus: { ...config.bus, kafka: { ...config.bus.kafka, brokers } } }),
  );
  await raw.ensureTopics(
    TopicTable.map((t) => ({
      name: `${prefix}${t.name}`,
      partitions: 4,
      retentionMs: 3_600_000,
      maxMessageBytes: t.maxMessageBytes,
    })),
  );
  const file = path.join(dir, "vigil.json");
  writeFileSync(
    file,
    JSON.stringify({
      dataDir: path.resolve(config.dataDir),
      ...(config.models.mirror ? { models: { mirror: config.models.mirror } } : {}),
      bus: { kind: "kafka", topicPrefix: prefix, kafka: { ...config.bus.kafka, brokers } },
      store: { path: path.join(dir, "vigil.db") },
      ...overrides,
    }),
  );
  const processes: ServiceProcess[] = [];
  return {
    dir,
    bus: new NamespacedBus(raw, prefix),
    raw,
    start: (stage: string, env: Record<string, string> = {}) => {
      const p = new ServiceProcess(stage, { configFile: file, env });
      processes.push(p);
      return p;
    },
    close: async () => {
      await Promise.all(processes.map((p) => p.kill("SIGTERM")));
      await raw.close();
    },
  };
}

async function groupLag(bus: NamespacedBus, group: string): Promise<number> {
  return (await bus.lag(group, Topics.faces)).reduce((n, p) => n + p.lag, 0);
}

/** Faces/s a group of `n` embed processes takes from a backlog, measured on its lag over a window. */
async function embedRate(
  ns: Awaited<ReturnType<typeof namespace>>,
  n: number,
  windowS: number,
  tick: () => void,
): Promise<number> {
  const group = `embed-x${n}`;
  const members = Array.from({ length: n }, () => ns.start("embed", { VIGIL_SERVICE__GROUP: group }));
  await Promise.all(members.map((m) => m.ready(120_000)));
  // Let the group settle (every member joined, partitions assigned, models warm) before measuring.
  await sleep(5000);
  const lag0 = await groupLag(ns.bus, group);
  const t0 = performance.now();
  for (let i = 0; i < windowS; i++, tick()) await sleep(1000);
  const lag1 = await groupLag(ns.bus, group);
  const rate = (lag0 - lag1) / ((performance.now() - t0) / 1000);
  if (lag1 === 0)
    throw new Error(`the ${n}-process group ran out of faces: publish more than ${windowS} s worth`);
  await Promise.all(members.map((m) => m.kill("SIGTERM")));
  return rate;
}

/**
 * The scale-out figures on this machine, every stage its own OS process over a real broker (the one given, or
 * a local one started here as the tests do): how embedding throughput grows from one process to two, and a
 * live run of RTSP cameras through all four services, the match stage on the embedded store or on Qdrant (the
 * nodes given, or a local server started for the end-to-end run and stopped after it, also on failure).
 */
export async function benchPipeline(
  config: Config,
  vision: Vision,
  options: PipelineBenchOptions,
): Promise<PipelineBenchResult> {
  const kind = options.store ?? "embedded";
  const given = options.qdrantUrl?.length ? options.qdrantUrl : undefined;
  // Said before a broker is started, let alone minutes of embed scaling.
  const unavailable = kind === "qdrant" && !given ? qdrantUnavailableReason() : undefined;
  if (unavailable) throw new Error(`cannot start a local Qdrant for --store qdrant: ${unavailable}`);
  const broker = options.brokers ? undefined : await KafkaBroker.start();
  const brokers = options.brokers ?? [broker!.address];
  const bar = progress("bench pipeline", 2 * options.windowS + options.seconds);
  let qdrantServer: QdrantServer | undefined;
  try {
    // First what can fail at once (the server, the cameras' video), not after minutes of embed scaling. The
    // server idles until the end-to-end run: nothing of embed scaling touches a store.
    if (kind === "qdrant" && !given) qdrantServer = await QdrantServer.start();
    const qdrantUrls = given ?? qdrantServer?.urls ?? [];
    const dir = tempDirFor(config, "bench-pipeline-media");
    const source = await benchFaceVideo(config, dir, options.video);
    const stream = cameraStream(
      source,
      path.resolve(config.dataDir, "bench"),
      options.seconds + 40,
      1280,
      720,
      25,
    );

    // Embed scaling on a backlog published before any embed process runs, so the producer takes no CPU from it.
    const samples = await alignedSampleFaces(config, vision);
    const embedNs = await namespace(config, brokers, "embed", {
      models: { inferenceWorkers: false, intraOpThreads: 1 },
      log: { level: "warn" },
    });
    let rate1 = 0;
    let rate2 = 0;
    try {
      for (let i = 0; i < options.faces; i += 100) {
        await embedNs.bus.publish(
          Topics.faces,
          Array.from({ length: Math.min(100, options.faces - i) }, (_, k) =>
            faceRecord(samples[(i + k) % samples.length]!, `cam-${(i + k) % 16}`, i + k, Date.now()),
          ),
        );
      }
      rate1 = await embedRate(embedNs, 1, options.windowS, () => bar.tick());
      rate2 = await embedRate(embedNs, 2, options.windowS, () => bar.tick());
    } finally {
      await embedNs.close();
    }

    // End to end: RTSP cameras → ingest → detect-align → embed → match, a 2 s cool-down so alerts are many.
    const mounts: Record<string, MountSpec> = {};
    for (let i = 0; i < options.cameras; i++) mounts[`/cam${i + 1}`] = { kind: "file", path: stream };
    const server = await RtspTestServer.start(mounts);
    const qdrantPrefix = `bench${Date.now().toString(36)}`;
    const cropsDir = path.join(dir, "crops");
    const e2eNs = await namespace(config, brokers, "e2e", {
      match: { alertCooldownS: 2 },
      models: { detectWorkers: 1, embedWorkers: 1 },
      log: { level: "warn" },
      cameras: Object.keys(mounts).map((m, i) => ({ id: `cam${i + 1}`, url: server.url(m) })),
      // The match stage's store (the others open none); the API key, if any, goes by environment, not on disk.
      ...(kind === "qdrant"
        ? {
            store: {
              kind: "qdrant",
              qdrantUrl: qdrantUrls,
              qdrantPrefix,
              crops: { kind: "folder", dir: cropsDir },
            },
          }
        : {}),
    }).catch(async (err: unknown) => {
      await server.kill();
      throw err;
    });
    const storeEnv: Record<string, string> = options.qdrantApiKey
      ? { VIGIL_STORE__QDRANT_API_KEY: options.qdrantApiKey }
      : {};
    // The store the match stage opens, as the bench opens it itself: to enrol the subject, and to count after.
    const openBenchStore = () =>
      kind === "qdrant"
        ? new QdrantStore(qdrantUrls, qdrantPrefix, options.qdrantApiKey, new FolderCropStore(cropsDir))
        : new SqliteStore(path.join(e2eNs.dir, "vigil.db"));
    let measured: Omit<PipelineBenchResult, "stored">;
    try {
      const still = path.join(dir, "still.jpg");
      execFileSync("ffmpeg", ["-y", "-loglevel", "error", "-ss", "1", "-i", source, "-frames:v", "1", still]);
      const face = path.join(dir, "subject.jpg");
      await cropLargestFace(vision, still, face);
      const store = openBenchStore();
      try {
        await enrolPhotos(vision, store, { id: "subject", name: "subject" }, [face]);
      } finally {
        store.close();
      }
      let measuring = false;
      const latencies: number[] = [];
      const watch = await e2eNs.bus.subscribe(Topics.alerts, { group: "bench-alerts" }, async (records) => {
        const now = Date.now();
        for (const r of records) if (measuring) latencies.push(now - AlertContract.decode(r.value).ts);
      });
      const stages = ["match", "embed", "detect-align"].map((s) => e2eNs.start(s, storeEnv));
      await Promise.all(stages.map((s) => s.ready(120_000)));
      const ingest = e2eNs.start("ingest");
      await ingest.ready(60_000);
      const detect = stages[2]!;
      await sleep(8000);
      const counts = async () => {
        const [i, d] = [await ingest.metrics(), await detect.metrics()];
        return {
          published: metricSum(i, "vigil_frames_published_total"),
          // From the cameras' status records (every ingest.statusEveryS): frames ingest dropped while behind.
          droppedAtIngest: metricSum(i, "vigil_camera_frames_dropped"),
          stale: metricSum(d, "vigil_frames_stale_total"),
        };
      };
      const c0 = await counts();
      measuring = true;
      const t0 = performance.now();
      for (let i = 0; i < options.seconds; i++, bar.tick()) await sleep(1000);
      measuring = false;
      const c1 = await counts();
      const elapsed = (performance.now() - t0) / 1000;
      await ingest.kill("SIGTERM");
      await watch.stop();
      bar.done();
      const sorted = [...latencies].sort((a, b) => a - b);
      // Every frame a camera gave in the window is processed unless it is dropped, at ingest (behind) or at
      // detect-align (stale): counting losses is exact, where counting processed frames would depend on what
      // was in flight at either edge of the window.
      const lost = c1.droppedAtIngest - c0.droppedAtIngest + (c1.stale - c0.stale);
      const offered = c1.published - c0.published + (c1.droppedAtIngest - c0.droppedAtIngest);
      measured = {
        brokers: brokers.join(","),
        store: kind,
        qdrant:
          kind === "qdrant"
            ? { url: qdrantUrls.join(","), startedForRun: !!qdrantServer, prefix: qdrantPrefix }
            : null,
        facesPerSecond1: rate1,
        facesPerSecond2: rate2,
        embedScaling: rate2 / rate1,
        cameras: options.cameras,
        fps: config.ingest.fps,
        seconds: elapsed,
        framesOffered: offered,
        framesProcessed: offered - lost,
        processedRatio: (offered - lost) / Math.max(1, offered),
        framesStale: c1.stale - c0.stale,
        alerts: latencies.length,
        p50AlertMs: percentile(sorted, 0.5),
        p95AlertMs: percentile(sorted, 0.95),
      };
    } finally {
      try {
        await e2eNs.close();
      } finally {
        await server.kill();
      }
    }
    // Every stage has stopped (SIGTERM: what was in flight is written): what the run left in its store.
    const store = openBenchStore();
    try {
      return { ...measured, stored: { sightings: await store.count(), alerts: await store.countAlerts() } };
    } finally {
      store.close();
    }
  } finally {
    try {
      await qdrantServer?.destroy();
    } finally {
      await broker?.destroy();
    }
  }
}
