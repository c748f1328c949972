import { performance } from "node:perf_hooks";
import client from "prom-client";
import type { Bus, BusRecord } from "../bus/index.ts";
import { CameraStatusContract, Topics } from "../contracts/index.ts";
import type { RunnerObserver } from "../runtime/runner.ts";
import type { Emit } from "../runtime/stage.ts";

const CAMERA_STATES = ["connecting", "live", "stalled", "backoff", "error", "ended"] as const;

/**
 * A process's Prometheus metrics: one registry, the runner's observer, and what ingest and detect-align count.
 * Names follow Prometheus conventions (`_total` counters, `_seconds` histograms).
 */
export class Metrics {
  readonly registry = new client.Registry();
  private readonly batchSize: client.Histogram;
  private readonly batchSeconds: client.Histogram;
  private readonly stale: client.Counter;
  private readonly deadLetters: client.Counter;
  private readonly retries: client.Counter;
  private readonly framesOut: client.Counter;
  private readonly framesProcessed: client.Counter;
  private readonly camera: Record<
    "framesIn" | "framesDropped" | "framesUndecodable" | "reconnects",
    client.Gauge
  >;
  private readonly cameraState: client.Gauge;

  constructor(readonly service: string) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ service });
    client.collectDefaultMetrics({ register: this.registry, prefix: "vigil_" });
    this.batchSize = new client.Histogram({
      name: "vigil_batch_size",
      help: "records per batch handed to a stage",
      labelNames: ["stage"],
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    });
    this.batchSeconds = new client.Histogram({
      name: "vigil_stage_batch_seconds",
      help: "time from a batch's arrival to its outputs published (decode, handle, publish, checkpoint)",
      labelNames: ["stage"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.stale = new client.Counter({
      name: "vigil_frames_stale_total",
      help: "records dropped because they were older than the stage's maxAgeMs on arrival",
      labelNames: ["stage", "camera"],
      registers,
    });
    this.deadLetters = new client.Counter({
      name: "vigil_dead_letters_total",
      help: "records sent to vigil.dlq (undecodable or failing on their own)",
      labelNames: ["stage", "topic"],
      registers,
    });
    this.retries = new client.Counter({
      name: "vigil_batch_retries_total",
      help: "failed attempts at a batch (transient failures are redelivered)",
      labelNames: ["stage"],
      registers,
    });
    this.framesOut = new client.Counter({
      name: "vigil_frames_published_total",
      help: "frames ingest published, per camera",
      labelNames: ["camera"],
      registers,
    });
    this.framesProcessed = new client.Counter({
      name: "vigil_frames_processed_total",
      help: "frames detection ran on, per camera",
      labelNames: ["camera"],
      registers,
    });
    const gauge = (name: string, help: string) =>
      new client.Gauge({ name, help, labelNames: ["camera"], registers });
    this.camera = {
      framesIn: gauge("vigil_camera_frames_in", "frames decoded from the camera since start"),
      framesDropped: gauge(
        "vigil_camera_frames_dropped",
        "frames dropped at ingest while the pipeline was behind",
      ),
      framesUndecodable: gauge(
        "vigil_camera_frames_undecodable",
        "packets or frames ffmpeg could not decode",
      ),
      reconnects: gauge("vigil_camera_reconnects", "reconnections to the camera"),
    };
    // The event loop's busy time, beside prom-client's CPU counter: CPU counts every thread (the inference
    // workers too), this only the thread that routes records, the one that must never become the bottleneck.
    new client.Gauge({
      name: "vigil_event_loop_active_seconds",
      help: "time the event loop spent busy (not waiting for I/O) since the process started",
      registers,
      collect() {
        this.set(performance.eventLoopUtilization().active / 1000);
      },
    });
    this.cameraState = new client.Gauge({
      name: "vigil_camera_state",
      help: "1 for the camera's current state",
      labelNames: ["camera", "state"],
      registers,
    });
  }

  /** The runner's observer: batch sizes and latency, stale drops, dead letters, retries. */
  observer(): RunnerObserver {
    return {
      batch: (stage, size, seconds) => {
        this.batchSize.observe({ stage }, size);
        this.batchSeconds.observe({ stage }, seconds);
      },
      stale: (stage, record: BusRecord) => this.stale.inc({ stage, camera: record.key }),
      deadLetter: (stage, topic) => this.deadLetters.inc({ stage, topic }),
      retry: (stage) => this.retries.inc({ stage }),
    };
  }

  /** What ingest publishes: frames per camera, and camera states and counters from its status records. */
  ingestPublished(e: Emit): void {
    if (e.topic === Topics.frames) {
      this.framesOut.inc({ camera: e.key });
      return;
    }
    if (e.topic !== Topics.cameraStatus) return;
    const s = CameraStatusContract.decode(e.value);
    for (const key of ["framesIn", "framesDropped", "framesUndecodable", "reconnects"] as const)
      this.camera[key].set({ camera: s.cameraId }, s[key]);
    for (const state of CAMERA_STATES)
      this.cameraState.set({ camera: s.cameraId, state }, state === s.state ? 1 : 0);
  }

  frameProcessed(cameraId: string): void {
    this.framesProcessed.inc({ camera: cameraId });
  }

  /** Counters a stage keeps itself (faces by rejection reason, …), read at scrape time. */
  gaugeFrom(name: string, help: string, label: string, read: () => Record<string, number>): void {
    new client.Gauge({
      name,
      help,
      labelNames: [label],
      registers: [this.registry],
      collect() {
        for (const [value, n] of Object.entries(read())) this.set({ [label]: value }, n);
      },
    });
  }

  /** Consumer lag of a group on its input topic, asked of the broker at scrape time. */
  consumerLag(bus: Bus, group: string, topic: string): void {
    if (!bus.lag) return;
    const lag = bus.lag.bind(bus);
    new client.Gauge({
      name: "vigil_consumer_lag",
      help: "records the stage's consumer group is behind the end of each input partition",
      labelNames: ["group", "topic", "partition"],
      registers: [this.registry],
      async collect() {
        try {
          for (const p of await lag(group, topic))
            this.set({ group, topic, partition: String(p.partition) }, p.lag);
        } catch {
          // The broker is away: no lag figure this scrape rather than a failed scrape.
        }
      },
    });
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
