import { fillTensor, flipHorizontal, type FrameImage } from "../pixels/image.ts";
import type { ModelSpec } from "../models/registry.ts";
import { ort } from "./runtime.ts";
import { l2normalize, type Point } from "../../geometry/index.ts";
import { applyHead, type Head } from "../models/heads.ts";

/** What the embed stage needs: aligned crops in, L2-normalised vectors of `modelId` out. */
export interface Embedder {
  readonly modelId: string;
  readonly dim: number;
  embed(crops: FrameImage[]): Promise<Float32Array[]>;
}

/** Runs an embedding model over aligned crops; every vector is L2-normalised and belongs to `modelId`. */
export class FaceEmbedder implements Embedder {
  readonly modelId: string;
  readonly dim: number;
  readonly width: number;
  readonly height: number;
  readonly template: Point[];

  constructor(
    private readonly session: ort.InferenceSession,
    private readonly spec: ModelSpec,
    private readonly flip: boolean,
    /** A trained head (`models.head`): its vectors, of its own model id, replace the base model's. */
    private readonly head?: Head,
    /** Crops per session run, at most the model's maximum batch. */
    private readonly runBatch = spec.maxBatch,
  ) {
    if (!spec.template || !spec.outputDim || !spec.input.width || !spec.input.height) {
      throw new Error(`${spec.id} is not an embedding model (no template, size or output dimension)`);
    }
    if (head && (head.manifest.base !== spec.id || head.manifest.flip !== flip)) {
      throw new Error(
        `head ${head.manifest.id} was trained on ${head.manifest.base} (flip ${head.manifest.flip ? "on" : "off"}); ` +
          `this process embeds with ${spec.id} (flip ${flip ? "on" : "off"}): use the pack and embed.flip it was trained with`,
      );
    }
    this.modelId = head?.manifest.id ?? spec.id;
    this.dim = head?.manifest.dim ?? spec.outputDim;
    this.width = spec.input.width;
    this.height = spec.input.height;
    this.template = spec.template;
  }

  /** Embeds crops of exactly the model's input size, in runs of at most `runBatch` crops. */
  async embed(crops: FrameImage[]): Promise<Float32Array[]> {
    const vectors = await this.embedBase(crops);
    return this.head ? applyHead(this.head, vectors) : vectors;
  }

  private async embedBase(crops: FrameImage[]): Promise<Float32Array[]> {
    const inputs = this.flip ? crops.flatMap((c) => [c, flipHorizontal(c)]) : crops;
    const raw: Float32Array[] = [];
    const chunk = Math.max(1, Math.min(this.runBatch, this.spec.maxBatch));
    for (let start = 0; start < inputs.length; start += chunk) {
      raw.push(...(await this.run(inputs.slice(start, start + chunk))));
    }
    if (!this.flip) return raw.map(l2normalize);
    // The flipped crop's vector is added before normalising: a cheap, well-known gain in verification accuracy.
    return crops.map((_, i) => {
      const a = raw[2 * i]!;
      const b = raw[2 * i + 1]!;
      const sum = new Float32Array(a.length);
      for (let k = 0; k < a.length; k++) sum[k] = a[k]! + b[k]!;
      return l2normalize(sum);
    });
  }

  private async run(crops: FrameImage[]): Promise<Float32Array[]> {
    const plane = this.width * this.height;
    const input = new Float32Array(crops.length * 3 * plane);
    crops.forEach((crop, i) => {
      if (crop.width !== this.width || crop.height !== this.height) {
        throw new Error(
          `crop is ${crop.width}×${crop.height}, ${this.modelId} takes ${this.width}×${this.height}`,
        );
      }
      fillTensor(crop, this.spec.input, input, i * 3 * plane);
    });
    const feeds = {
      [this.session.inputNames[0]!]: new ort.Tensor("float32", input, [
        crops.length,
        3,
        this.height,
        this.width,
      ]),
    };
    const out = await this.session.run(feeds);
    const data = out[this.session.outputNames[0]!]!.data as Float32Array;
    if (data.length !== crops.length * this.spec.outputDim!) {
      throw new Error(
        `${this.spec.id} returned ${data.length} values for ${crops.length} × ${this.spec.outputDim}`,
      );
    }
    const dim = this.spec.outputDim!;
    return crops.map((_, i) => data.slice(i * dim, (i + 1) * dim));
  }
}
