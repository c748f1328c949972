import { DynamicBatcher, type BatcherOptions } from "../../lib/batching/dynamic-batcher.ts";
import {
  EmbeddingContract,
  FaceContract,
  Topics,
  vectorToBytes,
  type FaceMessage,
} from "../../lib/contracts/index.ts";
import type { Emit, Stage } from "../../lib/runtime/stage.ts";
import type { Embedder } from "../../lib/vision/inference/embedder.ts";
import { messageCrop, type FrameImage } from "../../lib/vision/pixels/image.ts";

/** aligned faces → L2-normalised embeddings, batched across cameras; every vector carries its model id. */
export class EmbedStage implements Stage<FaceMessage> {
  readonly name = "embed";
  readonly input = { topic: Topics.faces, contract: FaceContract };
  private readonly batcher: DynamicBatcher<FrameImage, Float32Array>;

  constructor(
    private readonly embedder: Embedder,
    batching: BatcherOptions,
  ) {
    this.batcher = new DynamicBatcher(batching, (crops) => this.embedder.embed(crops));
  }

  get batchSizes(): readonly number[] {
    return this.batcher.batchSizes;
  }

  async handle(faces: FaceMessage[]): Promise<Emit[]> {
    const vectors = await this.batcher.submitMany(faces.map(messageCrop));
    return faces.map((face, i) => {
      const { crop, ...header } = face;
      return {
        topic: Topics.embeddings,
        key: face.cameraId,
        value: EmbeddingContract.encode({
          ...header,
          modelId: this.embedder.modelId,
          dim: this.embedder.dim,
          vector: vectorToBytes(vectors[i]!),
          crop,
        }),
      };
    });
  }
}
