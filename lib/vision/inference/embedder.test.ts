import { describe, expect, it } from "vitest";
import { loadConfig } from "../../config/index.ts";
import { modelSpec } from "../models/registry.ts";
import { FaceEmbedder } from "./embedder.ts";
import { createSession, type ort } from "./runtime.ts";
import { loadVision, modelStoreFor } from "./vision.ts";

describe("FaceEmbedder runs", () => {
  it("embeds a batch in runs of at most runBatch crops, with the vectors one large run gives", async () => {
    const config = loadConfig({ env: {} });
    const vision = await loadVision(
      config,
      () => {},
      () => {},
    );
    const spec = modelSpec(vision.pack.embedder);
    const session = await createSession(modelStoreFor(config, () => {}).artifactPath(spec), config.models);
    const runSizes: number[] = [];
    const counted = new Proxy(session, {
      get(target, key) {
        if (key !== "run") return Reflect.get(target, key, target);
        return (feeds: Record<string, ort.Tensor>, ...rest: unknown[]) => {
          runSizes.push(Object.values(feeds)[0]!.dims[0]!);
          return (target.run as (...a: unknown[]) => unknown).call(target, feeds, ...rest);
        };
      },
    });
    const { width, height } = spec.input as { width: number; height: number };
    const crops = Array.from({ length: 5 }, (_, k) => ({
      width,
      height,
      data: Uint8Array.from({ length: width * height * 3 }, (_, i) => (i * (7 + k) + k * 31) & 255),
    }));
    const chunked = await new FaceEmbedder(counted, spec, true, undefined, 2).embed(crops);
    // Five crops and their mirror images: ten crops in runs of 2 (of 1 for a model that takes one at a time).
    const run = Math.min(2, spec.maxBatch);
    expect(runSizes).toEqual(Array.from({ length: 10 / run }, () => run));
    const whole = await new FaceEmbedder(session, spec, true).embed(crops);
    for (let i = 0; i < crops.length; i++) {
      const cosine = chunked[i]!.reduce((s, v, k) => s + v * whole[i]![k]!, 0);
      expect(cosine).toBeGreaterThan(0.9999);
    }
  });
});
