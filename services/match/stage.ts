import {
  AlertContract,
  EmbeddingContract,
  Topics,
  bytesToVector,
  type EmbeddingMessage,
} from "../../lib/contracts/index.ts";
import type { Emit, Stage } from "../../lib/runtime/stage.ts";
import type { WatchlistStore } from "../../lib/store/watchlist-store.ts";
import { encodeJpeg } from "../../lib/vision/image.ts";

export interface MatchOptions {
  /** Cosine similarity at or above which a face is the watchlisted person; per model id. */
  thresholdFor: (modelId: string) => number;
  /** An alert for a person on a camera suppresses further alerts for them there for this long. */
  alertCooldownMs: number;
}

/** embeddings → watchlist alerts, once per person per camera per cool-down (by capture time). */
export class MatchStage implements Stage<EmbeddingMessage> {
  readonly name = "match";
  readonly input = { topic: Topics.embeddings, contract: EmbeddingContract };
  private lastAlert = new Map<string, number>();

  constructor(
    private readonly watchlist: WatchlistStore,
    private readonly options: MatchOptions,
  ) {}

  async handle(batch: EmbeddingMessage[]): Promise<Emit[]> {
    const emits: Emit[] = [];
    for (const face of batch) {
      const vector = bytesToVector(face.vector);
      const [best] = await this.watchlist.match(face.modelId, vector, 1);
      const threshold = this.options.thresholdFor(face.modelId);
      if (!best || best.score < threshold) continue;
      const key = `${best.person.id}@${face.cameraId}`;
      const last = this.lastAlert.get(key);
      if (
        last !== undefined &&
        face.captureTs - last < this.options.alertCooldownMs &&
        face.captureTs >= last
      )
        continue;
      this.lastAlert.set(key, face.captureTs);
      const crop = await encodeJpeg({
        width: face.cropSize.width,
        height: face.cropSize.height,
        data: face.crop,
      });
      emits.push({
        topic: Topics.alerts,
        key: best.person.watchlistId,
        value: AlertContract.encode({
          // Derived from the face id, so a replayed embedding yields the same alert id (idempotent downstream).
          alertId: `alert:${face.faceId}:${best.person.id}`,
          watchlistId: best.person.watchlistId,
          personId: best.person.id,
          personName: best.person.name,
          cameraId: face.cameraId,
          ts: face.captureTs,
          score: best.score,
          threshold,
          modelId: face.modelId,
          faceId: face.faceId,
          box: face.box,
          crop,
        }),
      });
    }
    return emits;
  }
}
