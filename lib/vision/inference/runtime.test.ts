import { existsSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../config/index.ts";
import { nvidiaGpu } from "./gpu-host.ts";
import { ort } from "./runtime.ts";
import {
  batchBucket,
  createSession,
  diagnoseProvider,
  ExecutionProviderError,
  ortLibraryDir,
  providerChain,
  resetAutoProvider,
  resolvedAutoProvider,
} from "./runtime.ts";

const model = path.resolve(".vigil/models/yunet-2026may.onnx");
const models = (executionProvider: string, extra: Record<string, unknown> = {}) =>
  loadConfig({ env: {}, overrides: { "models.executionProvider": executionProvider, ...extra } }).models;
/** The GPU can run here only with a GPU and the provider libraries beside onnxruntime-node's. */
const cudaRunsHere = () => nvidiaGpu() !== undefined && diagnoseProvider("cuda").length === 0;

describe.skipIf(!existsSync(model))("execution providers", () => {
  afterEach(() => resetAutoProvider());

  it("keeps the CPU provider last in every chain, for the nodes a GPU provider does not implement", () => {
    expect(providerChain("cpu")).toEqual(["cpu"]);
    expect(providerChain("cuda")).toEqual([{ name: "cuda", deviceId: 0 }, "cpu"]);
    expect(providerChain("tensorrt").map((p) => (typeof p === "string" ? p : p.name))).toEqual([
      "tensorrt",
      "cuda",
      "cpu",
    ]);
  });

  it("runs on the CPU", async () => {
    const session = await createSession(model, models("cpu"));
    expect(session.inputNames).toEqual(["input"]);
    await session.release();
  });

  it.skipIf(cudaRunsHere())(
    "refuses cuda where it cannot load, naming the missing libraries (no silent CPU)",
    async () => {
      const err = await createSession(model, models("cuda")).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ExecutionProviderError);
      const message = (err as Error).message;
      expect(message).toContain('models.executionProvider is "cuda"');
      if (!existsSync(path.join(ortLibraryDir(), "libonnxruntime_providers_cuda.so"))) {
        expect(message).toContain(`libonnxruntime_providers_cuda.so is not in ${ortLibraryDir()}`);
        expect(message).toContain("onnxruntime-gpu");
      }
      expect(message).toMatch(/libcublasLt|cuDNN/);
      expect(message).toContain('"auto"');
    },
  );

  it.skipIf(cudaRunsHere())("refuses tensorrt the same way, naming its provider library", async () => {
    const err = await createSession(model, models("tensorrt")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExecutionProviderError);
    expect((err as Error).message).toMatch(/libonnxruntime_providers_tensorrt\.so|libnvinfer\.so\.10/);
  });

  it("auto takes the GPU where it runs, else the CPU, saying why once", async () => {
    const warnings: string[] = [];
    const warn = (m: string) => warnings.push(m);
    const first = await createSession(model, models("auto"), { warn });
    const second = await createSession(model, models("auto"), { warn });
    if (cudaRunsHere()) {
      expect(resolvedAutoProvider()).toEqual({ provider: "cuda" });
      expect(warnings).toEqual([]);
    } else {
      expect(resolvedAutoProvider()?.provider).toBe("cpu");
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(
        /no GPU provider, running on the CPU[\s\S]*libonnxruntime_providers_cuda\.so/,
      );
    }
    await first.release();
    await second.release();
  });
});

describe("provider library diagnosis", () => {
  // The provider libraries from onnxruntime-gpu's wheel, where a developer extracted them (docs/gpu.md).
  const wheelDir = process.env.VIGIL_ORT_GPU_LIBS;
  it.skipIf(!wheelDir || nvidiaGpu())(
    "names each CUDA library the CUDA provider needs and the loader cannot find",
    () => {
      const problems = diagnoseProvider("cuda", wheelDir!);
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatch(
        /^libonnxruntime_providers_cuda\.so cannot be loaded: .*missing: .*libcublasLt\.so\.\d+/,
      );
    },
  );
});

const embedModel = path.resolve(".vigil/models/reid-0095.onnx");
describe.skipIf(!existsSync(embedModel))("batch buckets", () => {
  it("pads to a few sizes: small batches cost a GPU nothing extra, and each new shape costs a cuDNN search", () => {
    expect([1, 16, 17, 33, 64, 65, 200, 256, 257, 600].map(batchBucket)).toEqual([
      16, 16, 32, 64, 64, 128, 256, 256, 512, 768,
    ]);
  });

  it("gives exactly the unpadded outputs, for the batch asked", async () => {
    const plain = await createSession(embedModel, models("cpu"));
    const padded = await createSession(embedModel, models("cpu", { "models.gpu.embedBatch": 16 }), {
      bucket: true,
    });
    const data = new Float32Array(3 * 3 * 128 * 128).map((_, i) => (i * 7919) % 255);
    const feeds = { input: new ort.Tensor("float32", data, [3, 3, 128, 128]) };
    const a = (await plain.run(feeds)).output!;
    const b = (await padded.run(feeds)).output!;
    expect(b.dims).toEqual([3, 256, 1, 1]);
    const x = a.data as Float32Array;
    const y = b.data as Float32Array;
    expect(y.length).toBe(x.length);
    for (let i = 0; i < x.length; i++) expect(y[i]).toBeCloseTo(x[i]!, 4);
    expect(padded.inputNames).toEqual(["input"]);
    await plain.release();
    await padded.release();
  });
});
