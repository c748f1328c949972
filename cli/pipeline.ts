import { MemoryBus, type Subscription } from "../lib/bus/index.ts";
import type { Config } from "../lib/config/index.ts";
import { Topics } from "../lib/contracts/index.ts";
import { EventTopics, projectRecord, type VigilEvent } from "../lib/events/events.ts";
import { publishGrouped, StageRunner } from "../lib/runtime/runner.ts";
import type { Emit } from "../lib/runtime/stage.ts";
import type { AlertStore } from "../lib/store/alert-store.ts";
import type { SightingStore } from "../lib/store/sighting-store.ts";
import type { WatchlistStore } from "../lib/store/watchlist-store.ts";
import type { Embedder } from "../lib/vision/inference/embedder.ts";
import type { FrameAnalyzer } from "../lib/vision/inference/face-analyzer.ts";
import type { Vision } from "../lib/vision/inference/vision.ts";
import { startVisionThreads } from "../lib/vision/threads/vision-thread.ts";
import { createDetectAlign } from "../services/detect-align/index.ts";
import type { DetectAlignStage } from "../services/detect-align/stage.ts";
import { createEmbed } from "../services/embed/index.ts";
import type { EmbedStage } from "../services/embed/stage.ts";
import { createIngest } from "../services/ingest/index.ts";
import { startClipCutting } from "../services/ingest/clips.ts";
import type { CameraManager } from "../services/ingest/camera-manager.ts";
import type { CameraSpec } from "../services/ingest/camera.ts";
import { createMatch } from "../services/match/index.ts";
import type { IdentityStore } from "../lib/store/identity-store.ts";
import type { StateStore } from "../lib/store/state-store.ts";
import type { MatchStage } from "../services/match/stage.ts";

/**
 * `vigil run`: the in-memory bus and all four stages' composition roots in one process, the default product.
 * A service (`vigil serve <stage>`) is the same composition root on the Kafka bus, one stage per process.
 */
export class EmbeddedPipeline {
  readonly bus: MemoryBus;
  readonly detect: DetectAlignStage;
  readonly embed: EmbedStage;
  readonly match: MatchStage;
  private readonly runners: StageRunner<never>[];
  private events: Subscription | undefined;
  private clips: { stop(): Promise<void> } | undefined;
  readonly counts = { frames: 0, alerts: 0, deadLetters: 0 };
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly config: Config,
    vision: { analyzer: FrameAnalyzer; embedder: Embedder },
    private readonly closeVision: () => Promise<void>,
    stores: {
      watchlist: WatchlistStore;
      history: SightingStore & AlertStore;
      unknowns?: IdentityStore;
      follows?: StateStore;
    },
    private readonly onEvent: (e: VigilEvent) => void,
  ) {
    this.bus = new MemoryBus({
      capacity: config.bus.queueCapacity,
      topicCapacity: { [Topics.frames]: config.bus.frameQueueCapacity },
      // A batch failing for the world's reasons (the store away) is delivered again until it passes: say so.
      onHandlerError: (error, attempt) => {
        if (attempt === 1 || attempt % 20 === 0)
          onEvent({ type: "warning", message: `retrying a batch (attempt ${attempt}): ${error.message}` });
      },
    });
    const detect = createDetectAlign(config, { analyzer: vision.analyzer });
    const embed = createEmbed(config, { embedder: vision.embedder });
    const match = createMatch(config, stores);
    this.detect = detect.stage;
    this.embed = embed.stage;
    this.match = match.stage;
    this.runners = [
      new StageRunner(this.bus, detect.stage, detect.run),
      new StageRunner(this.bus, embed.stage, embed.run),
      new StageRunner(this.bus, match.stage, match.run),
    ] as StageRunner<never>[];
  }

  static async start(
    config: Config,
    vision: Vision,
    stores: {
      watchlist: WatchlistStore;
      history: SightingStore & AlertStore;
      unknowns?: IdentityStore;
      follows?: StateStore;
    },
    onEvent: (e: VigilEvent) => void,
  ) {
    const threads = config.models.inferenceWorkers ? await startVisionThreads(config, vision) : undefined;
    const p = new EmbeddedPipeline(config, threads ?? vision, async () => threads?.close(), stores, onEvent);
    try {
      await p.wire();
    } catch (err) {
      await threads?.close();
      throw err;
    }
    return p;
  }

  private async wire() {
    for (const runner of this.runners) await runner.start();
    // The console is one more consumer group on the output topics, as the API is.
    this.events = await this.bus.subscribe(
      EventTopics,
      { group: "cli-events", maxBatch: 64 },
      async (records) => {
        for (const r of records) {
          const event = projectRecord(r.topic, r.value);
          if (!event) continue;
          if (event.type === "alert") this.counts.alerts++;
          if (event.type === "dead-letter") this.counts.deadLetters++;
          this.onEvent(event);
        }
      },
    );
  }

  /** Starts the cameras; frames flow through the bus with backpressure (live sources drop, never block). */
  startCameras(cameras: CameraSpec[]): CameraManager {
    const publish = async (e: Emit) => {
      if (e.topic === Topics.frames) this.counts.frames++;
      await publishGrouped(this.bus, [e]);
    };
    return createIngest(this.config, { publish, cameras }).start();
  }

  /** Cuts clips for the recorded cameras among `manager`'s, from the alerts (and sightings) on this bus. */
  async startClips(manager: CameraManager) {
    this.clips = await startClipCutting(this.config, this.bus, manager.recordings(), "clips", (message) =>
      this.onEvent({ type: "warning", message: `clips: ${message}` }),
    );
  }

  async drain() {
    await this.bus.drain();
  }

  /** Idempotent; the vision workers are stopped whatever else fails, so they never keep the process alive. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        await this.bus.drain();
        // Upstream first, each flushed once its input is quiet: tracks still open at the end of the input
        // become sightings too.
        for (const runner of this.runners) {
          await runner.stop({ flush: true });
          await this.bus.drain();
        }
        await this.events?.stop();
        await this.clips?.stop();
        await this.bus.close();
      } finally {
        await this.closeVision();
      }
    })();
    return this.closing;
  }
}
