import { existsSync } from "node:fs";
import path from "node:path";
import { recordsAnyCamera, type Config } from "../../lib/config/index.ts";
import { ClipStore } from "../../lib/store/clip-store.ts";
import { openCheckedStore, openCropStore } from "../../lib/store/open-store.ts";
import { enrolPhotos, scanWatchlistFolder } from "../../lib/watchlist/enrol.ts";
import type { Vision } from "../../lib/vision/inference/vision.ts";
import { thresholdFor } from "../../lib/vision/models/calibration.ts";
import {
  isHttpUrl,
  isLiveUrl,
  recordRoot,
  resolveCamera,
  type CameraSpec,
} from "../../services/ingest/camera.ts";
import type { VigilEvent } from "../../lib/events/events.ts";
import { eventPrinter } from "../events.ts";
import { EmbeddedPipeline } from "../pipeline.ts";
import { UsageError } from "../context.ts";
import { startEmbeddedApi, untilInterrupted } from "./api.ts";
import { RetentionScheduler, retentionOptions } from "../../lib/runtime/retention.ts";

export interface RunOptions {
  source: string[];
  watchlist?: string;
  events: "ndjson" | "text";
  /** Stops live cameras (files end on their own); the CLI wires SIGINT/SIGTERM to it. */
  signal?: AbortSignal;
  /** The embedded store's file; `:memory:` for a throw-away run. Default: `store.path` / `<dataDir>/vigil.db`. */
  storeFile?: string;
  /** `host:port`: also serve the operator API from this process (services/api). */
  api?: string;
}

/** Cameras from --source (file paths or URLs, ids cam-1, cam-2, …) plus those in the config file. */
export function camerasFor(config: Config, sources: string[]): CameraSpec[] {
  const fromArgs = sources.map((url, i) => {
    const isUrl = isLiveUrl(url) || isHttpUrl(url) || /^[a-z]+:\/\//i.test(url);
    if (!isUrl && !existsSync(url)) throw new UsageError(`source ${url} does not exist`);
    return resolveCamera(
      { id: `cam-${i + 1}`, url: isUrl ? url : path.resolve(url), loop: false },
      config.ingest,
      recordRoot(config),
    );
  });
  const fromConfig = config.cameras.map((c) => resolveCamera(c, config.ingest, recordRoot(config)));
  const cameras = [...fromArgs, ...fromConfig];
  if (cameras.length === 0)
    throw new UsageError("no cameras: give --source <file|url> or list cameras in the config file");
  const ids = new Set<string>();
  for (const c of cameras) {
    if (ids.has(c.id)) throw new UsageError(`camera id ${c.id} is used twice`);
    ids.add(c.id);
  }
  return cameras;
}

/** The embedded product: enrol the watchlist folder, then run every camera through all stages in-process. */
export async function runEmbedded(
  config: Config,
  vision: Vision,
  options: RunOptions,
  emit: (e: VigilEvent) => void = eventPrinter(options.events),
) {
  const started = Date.now();
  // Refused before any camera starts: a declared embedder never measured here has no operating point to match at.
  thresholdFor(vision.embedder.modelId, config);
  const cameras = camerasFor(config, options.source);
  const store = await openCheckedStore(config, options.storeFile);
  const watchlist = store;
  if (vision.fallbackReason)
    emit({ type: "warning", message: `running on the fallback pack ${vision.pack.id}` });
  let enrolled = 0;
  if (options.watchlist) {
    const { people, skipped } = scanWatchlistFolder(options.watchlist);
    for (const s of skipped) emit({ type: "warning", message: s });
    for (const person of people) {
      const outcomes = await enrolPhotos(vision, watchlist, person, person.files, (o) =>
        emit({ type: "enrol", personId: o.personId, file: o.file, ok: o.ok, reason: o.reason }),
      );
      enrolled += outcomes.filter((o) => o.ok).length;
    }
    if (enrolled === 0)
      emit({
        type: "warning",
        message: `no usable photo in watchlist ${options.watchlist}; no alerts can fire`,
      });
  }
  const clips = recordsAnyCamera(config) ? new ClipStore(openCropStore(config)) : undefined;
  const retention = new RetentionScheduler(store, {
    ...retentionOptions(config),
    clips,
    onPurged: (r) => {
      if (r.sightings > 0 || r.alerts > 0 || r.unknowns > 0 || r.clips > 0)
        emit({
          type: "warning",
          message: `retention: deleted ${r.sightings} sighting(s) older than ${config.store.retentionDays} days, ${r.alerts} alert(s) older than ${config.store.alertRetentionDays} days and ${r.unknowns} unknown identit${r.unknowns === 1 ? "y" : "ies"} not seen for ${config.store.unknownRetentionDays} days${r.clips > 0 ? `, and ${r.clips} clip file(s) with them` : ""}`,
        });
    },
    onError: (err) => emit({ type: "warning", message: `retention: ${(err as Error).message}` }),
  });
  // At start as before (a store left for weeks is trimmed before it is searched), then periodically.
  await retention.tick();
  const pipeline = await EmbeddedPipeline.start(
    config,
    vision,
    { watchlist: store, history: store, unknowns: store.unknowns, follows: store },
    emit,
  );
  const api = options.api
    ? await startEmbeddedApi(config, options.api, {
        bus: pipeline.bus,
        store,
        vision,
        storeFile: options.storeFile,
      }).catch(async (err: unknown) => {
        await pipeline.close().catch(() => {});
        store.close();
        throw err;
      })
    : undefined;
  retention.start();
  const manager = pipeline.startCameras(cameras);
  await pipeline.startClips(manager);
  // Live cameras run until interrupted; every ffmpeg child is stopped before the process exits. An interrupt
  // ends the API too: only cameras that ended on their own leave it serving.
  let interrupted = false;
  const stop = () => {
    interrupted = true;
    void manager.stop();
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  options.signal?.addEventListener("abort", stop);
  try {
    const results = await manager.done();
    await pipeline.close();
    const seconds = (Date.now() - started) / 1000;
    const summary = {
      type: "summary" as const,
      pack: vision.pack.id,
      cameras: cameras.length,
      frames: pipeline.counts.frames,
      faces: pipeline.detect.stats.faces,
      embeddedFaces: pipeline.detect.stats.embedded,
      rejectedFaces: pipeline.detect.stats.rejected,
      rejectedBy: pipeline.detect.stats.rejectedBy,
      enrolledPhotos: enrolled,
      threshold: thresholdFor(vision.embedder.modelId, config),
      alerts: pipeline.counts.alerts,
      sightings: pipeline.match.stats.sightings,
      deadLetters: pipeline.counts.deadLetters,
      cameraErrors: results.filter((r) => r.state === "error").length,
      seconds,
    };
    emit(summary);
    if (api && !interrupted) {
      emit({
        type: "warning",
        message: `every camera has ended; the API stays up at ${api.url} until interrupted`,
      });
      await untilInterrupted(options.signal);
    }
    return { summary, results };
  } finally {
    await pipeline.close().catch(() => {});
    await api?.stop().catch(() => {});
    await retention.stop();
    store.close();
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    options.signal?.removeEventListener("abort", stop);
  }
}
