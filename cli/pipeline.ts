import { MemoryBus } from "../lib/bus/index.ts";
import type { Config } from "../lib/config/index.ts";
import {
  AlertContract,
  CameraStatusContract,
  SightingContract,
  DeadLetterContract,
  EmbeddingContract,
  Topics,
} from "../lib/contracts/index.ts";
import { runStage, type Emit } from "../lib/runtime/stage.ts";
import type { WatchlistStore } from "../lib/store/watchlist-store.ts";
import type { SightingStore } from "../lib/store/sighting-store.ts";
import type { Vision } from "../lib/vision/inference/vision.ts";
import type { Embedder } from "../lib/vision/inference/embedder.ts";
import type { FrameAnalyzer } from "../lib/vision/inference/face-analyzer.ts";
import { startVisionThreads } from "../lib/vision/threads/vision-thread.ts";
import { thresholdFor } from "../lib/vision/models/calibration.ts";
import { CameraManager } from "../services/ingest/camera-manager.ts";
import type { CameraSpec } from "../services/ingest/camera.ts";
import { DetectAlignStage } from "../services/detect-align/stage.ts";
import { EmbedStage } from "../services/embed/stage.ts";
import { MatchStage } from "../services/match/stage.ts";
import type { VigilEvent } from "./events.ts";

/**
 * All four stages in one process over the in-memory bus: the default product. The same stage objects run as
 * separate services over Kafka; only this wiring differs.
 */
export class EmbeddedPipeline {
  readonly bus: MemoryBus;
  readonly detect: DetectAlignStage;
  readonly embed: EmbedStage;
  readonly match: MatchStage;
  private readonly subscriptions: { stop(): Promise<void> }[] = [];
  readonly counts = { frames: 0, alerts: 0, deadLetters: 0 };
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly config: Config,
    vision: { analyzer: FrameAnalyzer; embedder: Embedder },
    private readonly closeVision: () => Promise<void>,
    watchlist: WatchlistStore,
    history: SightingStore,
    private readonly onEvent: (e: VigilEvent) => void,
  ) {
    this.bus = new MemoryBus({
      capacity: config.bus.queueCapacity,
      topicCapacity: { [Topics.frames]: config.bus.frameQueueCapacity },
      onDeadLetter: async (topic, record, error) => {
        await this.bus.publish(Topics.dlq, [
          {
            key: topic,
            value: DeadLetterContract.encode({
              sourceTopic: topic,
              key: record.key,
              reason: error.message,
              ts: Date.now(),
              original: record.value,
            }),
          },
        ]);
      },
    });
    this.detect = new DetectAlignStage(
      vision.analyzer,
      {
        maxBatch: config.detect.maxBatch,
        maxWaitMs: config.detect.maxWaitMs,
      },
      config.detect.embedGate,
    );
    this.embed = new EmbedStage(vision.embedder, {
      maxBatch: config.embed.maxBatch,
      maxWaitMs: config.embed.maxWaitMs,
    });
    this.match = new MatchStage(watchlist, history, {
      thresholdFor: (modelId) => thresholdFor(modelId, config),
      alertCooldownMs: config.match.alertCooldownS * 1000,
      tracker: {
        timeoutMs: config.match.trackTimeoutS * 1000,
        similarity: config.match.trackSimilarity,
        iou: config.match.trackIou,
        reacquire: config.match.trackReacquire,
      },
      exclusionSimilarity: config.match.exclusionSimilarity,
    });
  }

  static async start(
    config: Config,
    vision: Vision,
    stores: { watchlist: WatchlistStore; history: SightingStore },
    onEvent: (e: VigilEvent) => void,
  ) {
    const threads = config.models.inferenceWorkers ? await startVisionThreads(config, vision) : undefined;
    const p = new EmbeddedPipeline(
      config,
      threads ?? vision,
      async () => threads?.close(),
      stores.watchlist,
      stores.history,
      onEvent,
    );
    try {
      await p.wire();
    } catch (err) {
      await threads?.close();
      throw err;
    }
    return p;
  }

  private async wire() {
    const { bus } = this;
    this.subscriptions.push(
      await runStage(bus, this.detect, { maxBatch: this.config.detect.maxBatch }),
      await runStage(bus, this.embed, { maxBatch: this.config.embed.maxBatch }),
      await runStage(bus, this.match, { maxBatch: 32 }),
    );
    // The console is one more consumer group on the output topics, like the API will be.
    const group = { group: "cli-events", maxBatch: 64 };
    this.subscriptions.push(
      await bus.subscribe(Topics.embeddings, group, async (records) => {
        for (const r of records) {
          const f = EmbeddingContract.decode(r.value);
          this.onEvent({
            type: "face",
            cameraId: f.cameraId,
            ts: f.captureTs,
            faceId: f.faceId,
            box: f.box,
            quality: f.quality,
            modelId: f.modelId,
          });
        }
      }),
      await bus.subscribe(Topics.alerts, group, async (records) => {
        for (const r of records) {
          const a = AlertContract.decode(r.value);
          this.counts.alerts++;
          this.onEvent({
            type: "alert",
            personId: a.personId,
            name: a.personName,
            score: a.score,
            threshold: a.threshold,
            cameraId: a.cameraId,
            ts: a.ts,
            faceId: a.faceId,
            alertId: a.alertId,
            modelId: a.modelId,
          });
        }
      }),
      await bus.subscribe(Topics.sightings, group, async (records) => {
        for (const r of records) {
          const s = SightingContract.decode(r.value);
          this.onEvent({
            type: "sighting",
            sightingId: s.sightingId,
            cameraId: s.cameraId,
            startTs: s.startTs,
            endTs: s.endTs,
            faces: s.faces,
            personId: s.match?.personId ?? null,
            score: s.match?.score ?? null,
          });
        }
      }),
      await bus.subscribe(Topics.cameraStatus, group, async (records) => {
        for (const r of records) {
          const s = CameraStatusContract.decode(r.value);
          const { cameraId, state, ts, lastError, framesIn, framesDropped, framesUndecodable, reconnects } =
            s;
          this.onEvent({
            type: "camera",
            cameraId,
            state,
            ts,
            lastError,
            framesIn,
            framesDropped,
            framesUndecodable,
            reconnects,
          });
        }
      }),
      await bus.subscribe(Topics.dlq, group, async (records) => {
        for (const r of records) {
          const d = DeadLetterContract.decode(r.value);
          this.counts.deadLetters++;
          this.onEvent({
            type: "dead-letter",
            sourceTopic: d.sourceTopic,
            key: d.key,
            reason: d.reason,
            ts: d.ts,
          });
        }
      }),
    );
  }

  /** Starts the cameras; frames flow through the bus with backpressure (live sources drop, never block). */
  startCameras(cameras: CameraSpec[]): CameraManager {
    const emit = async (e: Emit) => {
      if (e.topic === Topics.frames) this.counts.frames++;
      await this.bus.publish(e.topic, [{ key: e.key, value: e.value }]);
    };
    return new CameraManager(cameras, emit, this.config.ingest).start();
  }

  async drain() {
    await this.bus.drain();
  }

  /** Idempotent; the vision workers are stopped whatever else fails, so they never keep the process alive. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        await this.bus.drain();
        // Tracks still open at the end of the input become sightings too.
        for (const out of await this.match.flush())
          await this.bus.publish(out.topic, [{ key: out.key, value: out.value }]);
        await this.bus.drain();
        for (const s of this.subscriptions) await s.stop();
        await this.bus.close();
      } finally {
        await this.closeVision();
      }
    })();
    return this.closing;
  }
}
