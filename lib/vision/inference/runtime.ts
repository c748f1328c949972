import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { constants } from "node:os";
import path from "node:path";
import { isMainThread } from "node:worker_threads";
import * as ort from "onnxruntime-node";
import type { Config } from "../../config/index.ts";
import { standInSession } from "./stand-in.ts";

export { ort };

export type ExecutionProvider = "cpu" | "cuda" | "tensorrt";
type ModelsConfig = Config["models"];

/** A GPU execution provider was asked for and cannot run here; the message says what is missing. */
export class ExecutionProviderError extends Error {
  override name = "ExecutionProviderError";
  constructor(
    readonly provider: ExecutionProvider,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The folder of onnxruntime-node's native library. ONNX Runtime looks for its provider libraries
 * (libonnxruntime_providers_*.so) next to libonnxruntime.so and nowhere else: no search path reaches them.
 */
export function ortLibraryDir(): string {
  const require = createRequire(import.meta.url);
  const pkgJson = require.resolve("onnxruntime-node/package.json");
  const pkg = JSON.parse(readFileSync(pkgJson, "utf8")) as { binary?: { napi_versions?: number[] } };
  const napi = pkg.binary?.napi_versions?.[0] ?? 6;
  return path.join(path.dirname(pkgJson), "bin", `napi-v${napi}`, process.platform, process.arch);
}

/** What each GPU provider needs beside onnxruntime-node's CPU library, in the order ONNX Runtime loads them. */
export const PROVIDER_LIBRARIES: Record<Exclude<ExecutionProvider, "cpu">, string[]> = {
  cuda: ["libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so"],
  tensorrt: [
    "libonnxruntime_providers_shared.so",
    "libonnxruntime_providers_tensorrt.so",
    "libonnxruntime_providers_cuda.so",
  ],
};

const WHERE_FROM =
  "onnxruntime-node ships only the CPU library for linux-x64; the provider libraries of the same version are in " +
  "PyPI's onnxruntime-gpu wheel (onnxruntime/capi/), and must be copied next to libonnxruntime.so.1";

/** Dependencies the dynamic loader cannot find for `file` (ldd's "not found" lines); empty when ldd is absent. */
function missingDependencies(file: string): string[] {
  try {
    const out = execFileSync("ldd", [file], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    return out
      .split("\n")
      .filter((l) => /=>\s*not found/.test(l))
      .map((l) => l.trim().split(/\s+/)[0]!);
  } catch {
    return [];
  }
}

/**
 * Why a provider's libraries cannot be loaded, one line per problem; empty when they all load (then the cause
 * is elsewhere: no GPU, driver too old, out of memory). Loading a library only to see whether it loads is what
 * the dynamic loader's own error gives precisely (the first missing dependency by name); ldd adds the rest.
 */
export function diagnoseProvider(
  provider: Exclude<ExecutionProvider, "cpu">,
  dir = ortLibraryDir(),
): string[] {
  const problems: string[] = [];
  for (const name of PROVIDER_LIBRARIES[provider]) {
    const file = path.join(dir, name);
    if (!existsSync(file)) {
      problems.push(`${name} is not in ${dir}`);
      continue;
    }
    try {
      process.dlopen({ exports: {} } as NodeJS.Module, file, constants.dlopen.RTLD_LAZY);
    } catch (err) {
      const message = (err as Error).message;
      // Loaded fine: it is a plain library, not a Node addon, so Node's own registration step is what failed.
      if (/self-register|did not self-register/i.test(message)) continue;
      const missing = missingDependencies(file);
      problems.push(
        `${name} cannot be loaded: ${message}` +
          (missing.length > 0 ? ` (missing: ${missing.join(", ")})` : ""),
      );
    }
  }
  return problems;
}

function providerHint(provider: Exclude<ExecutionProvider, "cpu">): string {
  return provider === "tensorrt"
    ? "TensorRT needs libnvinfer.so.10 and libnvonnxparser.so.10 (TensorRT 10) on the loader path, besides what CUDA needs"
    : "CUDA needs the CUDA runtime, cuBLAS/cuBLASLt and cuRAND of the CUDA major version the providers were built for, cuDNN 9 and the NVIDIA driver (libcuda.so.1) on the loader path (ldconfig or LD_LIBRARY_PATH)";
}

/** The error for a provider that failed to start, with the diagnosis of its libraries. */
export function providerError(
  provider: Exclude<ExecutionProvider, "cpu">,
  cause: unknown,
  dir = ortLibraryDir(),
): ExecutionProviderError {
  const problems = diagnoseProvider(provider, dir);
  const ortMessage = (cause as Error)?.message ?? String(cause);
  const lines =
    problems.length > 0
      ? [
          `models.executionProvider is "${provider}" but ONNX Runtime cannot load it:`,
          ...problems.map((p) => `  - ${p}`),
          `  ${WHERE_FROM}; ${providerHint(provider)}.`,
        ]
      : [
          `models.executionProvider is "${provider}": its libraries load, but ONNX Runtime could not start it ` +
            `(${ortMessage}). Is a GPU visible (nvidia-smi) and the driver recent enough for the CUDA version?`,
        ];
  lines.push(`  ONNX Runtime said: ${ortMessage}`);
  lines.push(
    `  Set models.executionProvider to "cpu", or "auto" to fall back to the CPU when the GPU cannot run.`,
  );
  return new ExecutionProviderError(provider, lines.join("\n"));
}

/**
 * TensorRT's settings go through ONNX Runtime's ORT_TENSORRT_* environment variables: onnxruntime-node passes
 * nothing but the device id to the provider, and the provider reads these when it is given no options.
 */
export function applyTensorrtEnv(
  models: ModelsConfig,
  dataDir: string,
  env: NodeJS.ProcessEnv = process.env,
) {
  const cacheDir = path.resolve(models.tensorrt.engineCacheDir ?? path.join(dataDir, "tensorrt-cache"));
  mkdirSync(cacheDir, { recursive: true });
  env.ORT_TENSORRT_ENGINE_CACHE_ENABLE = "1";
  env.ORT_TENSORRT_CACHE_PATH = cacheDir;
  env.ORT_TENSORRT_FP16_ENABLE = models.tensorrt.fp16 ? "1" : "0";
  return cacheDir;
}

/** The execution providers handed to ONNX Runtime, most preferred first (later ones take unsupported nodes). */
export function providerChain(provider: ExecutionProvider): ort.InferenceSession.ExecutionProviderConfig[] {
  if (provider === "cpu") return ["cpu"];
  if (provider === "cuda") return [{ name: "cuda", deviceId: 0 }, "cpu"];
  return [{ name: "tensorrt", deviceId: 0 }, { name: "cuda", deviceId: 0 }, "cpu"];
}

/** What `auto` settled on in this thread, and why the GPU was passed over when it was. */
let autoChoice: { provider: ExecutionProvider; reason?: string } | undefined;

export function resolvedAutoProvider() {
  return autoChoice;
}

/** Forgets what `auto` chose (tests). */
export function resetAutoProvider() {
  autoChoice = undefined;
}

export interface SessionOptions {
  /** For `auto`'s fallback notice (once per thread); stderr by default, silent in worker threads. */
  warn?: (message: string) => void;
  /** `<dataDir>` for TensorRT's default engine cache. */
  dataDir?: string;
  /**
   * Pad the batch dimension to a few fixed sizes (see batchBucket). Default: on a GPU provider, for models
   * whose batch dimension is free. Off for measurements that want the exact batch size.
   */
  bucket?: boolean;
  /** A frame-input detector's padded input size: only a stand-in (`models.standIn`) needs to be told it. */
  detectorGrid?: { width: number; height: number };
}

/** The batch sizes a GPU session runs: 16, 32, 64, 128, 256, then multiples of 256. */
export function batchBucket(n: number): number {
  if (n <= 16) return 16;
  if (n <= 256) return 2 ** Math.ceil(Math.log2(n));
  return Math.ceil(n / 256) * 256;
}

/**
 * A session whose runs are padded to batchBucket sizes, with every bucket up to `warmUpTo` run once now.
 * Why: ONNX Runtime's CUDA provider (as onnxruntime-node configures it: exhaustive cuDNN algorithm search,
 * which it offers no option to change) benchmarks every convolution the first time it sees an input shape,
 * which stalls that session for seconds; a live embedder sees a new batch size every few batches. On a GPU a
 * batch of 16 costs what a batch of 1 does, so padding small batches is free, and the few shapes left are
 * searched here, before live traffic, instead of in the middle of it.
 */
async function bucketed(session: ort.InferenceSession, warmUpTo: number): Promise<ort.InferenceSession> {
  const meta = session.inputMetadata;
  const batchFree = meta.every((m) => m.isTensor && typeof m.shape[0] === "string");
  if (!batchFree) return session;
  const pad = (feeds: ort.InferenceSession.FeedsType, to: number) => {
    const out: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) {
      const per = t.size / t.dims[0]!;
      const Ctor = (t.data as Float32Array).constructor as new (n: number) => Float32Array;
      const data = new Ctor(per * to);
      data.set(t.data as Float32Array);
      out[name] = new ort.Tensor(t.type, data, [to, ...t.dims.slice(1)]);
    }
    return out;
  };
  const run = async (feeds: ort.InferenceSession.FeedsType, ...rest: unknown[]) => {
    const first = Object.values(feeds)[0];
    const n = first?.dims[0] ?? 0;
    const to = batchBucket(n);
    if (!first || n === 0 || to === n)
      return (session.run as (...a: unknown[]) => Promise<unknown>)(feeds, ...rest);
    const out = (await session.run(pad(feeds, to))) as ort.InferenceSession.OnnxValueMapType;
    const sliced: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(out)) {
      sliced[name] =
        t.dims[0] === to
          ? new ort.Tensor(t.type, (t.data as Float32Array).subarray(0, (t.size / to) * n), [
              n,
              ...t.dims.slice(1),
            ])
          : t;
    }
    return sliced;
  };
  // Warming needs every other dimension fixed (an embedder's crop size); detectors of free size warm on use.
  const fixed = meta.map((m) => (m as { readonly shape: readonly (number | string)[] }).shape.slice(1));
  if (fixed.every((dims) => dims.every((d) => typeof d === "number"))) {
    for (let b = 16; b <= batchBucket(warmUpTo); b = batchBucket(b + 1)) {
      const feeds: Record<string, ort.Tensor> = {};
      meta.forEach((m, i) => {
        const dims = [b, ...(fixed[i] as number[])];
        feeds[m.name] = new ort.Tensor("float32", new Float32Array(dims.reduce((a, d) => a * d, 1)), dims);
      });
      await session.run(feeds);
    }
  }
  return new Proxy(session, {
    get: (target, prop, receiver) =>
      prop === "run" ? run : (Reflect.get(target, prop, receiver) as unknown),
  });
}

/** The provider a session of these settings runs on, once `auto` has resolved (cpu until then). */
export function effectiveProvider(models: ModelsConfig): ExecutionProvider {
  return models.executionProvider === "auto" ? (autoChoice?.provider ?? "cpu") : models.executionProvider;
}

/**
 * One place that decides how ONNX Runtime sessions are made: execution provider, threads, denormals. A GPU
 * provider that cannot load is an error naming what is missing, never a silent CPU session; only `auto` falls
 * back to the CPU, saying why once.
 */
export async function createSession(
  model: string | Uint8Array,
  models: ModelsConfig,
  options: SessionOptions = {},
): Promise<ort.InferenceSession> {
  if (models.executionProvider !== "auto") return open(model, models, models.executionProvider, options);
  if (autoChoice) return open(model, models, autoChoice.provider, options);
  try {
    const session = await open(model, models, "cuda", options);
    autoChoice = { provider: "cuda" };
    return session;
  } catch (err) {
    const reason = err instanceof ExecutionProviderError ? err.message : (err as Error).message;
    autoChoice = { provider: "cpu", reason };
    const warn = options.warn ?? (isMainThread ? (m: string) => process.stderr.write(m) : () => {});
    warn(`vigil: models.executionProvider "auto": no GPU provider, running on the CPU.\n${reason}\n`);
    return open(model, models, "cpu", options);
  }
}

async function open(
  model: string | Uint8Array,
  models: ModelsConfig,
  provider: ExecutionProvider,
  options: SessionOptions,
): Promise<ort.InferenceSession> {
  if (provider === "tensorrt") applyTensorrtEnv(models, options.dataDir ?? ".vigil");
  const sessionOptions: ort.InferenceSession.SessionOptions = {
    executionProviders: providerChain(provider),
    graphOptimizationLevel: "all",
    // Silences a warning per initializer that older exports trigger.
    logSeverityLevel: 3,
    ...(models.intraOpThreads > 0 ? { intraOpNumThreads: models.intraOpThreads } : {}),
    // Denormal activations cost several times the time of normal ones on x86 and change no result we keep.
    // Idle ORT workers spin by default; next to many ffmpeg decoders on few cores that spinning steals their CPU.
    extra: {
      session: {
        set_denormal_as_zero: "1",
        intra_op: { allow_spinning: models.spinWait ? "1" : "0" },
        inter_op: { allow_spinning: models.spinWait ? "1" : "0" },
      },
    },
  };
  let session: ort.InferenceSession;
  try {
    session =
      typeof model === "string"
        ? await ort.InferenceSession.create(model, sessionOptions)
        : await ort.InferenceSession.create(model, sessionOptions);
  } catch (err) {
    if (provider === "cpu") throw err;
    // A model error would fail on the CPU too; only a provider that cannot start is the provider's fault.
    if (!/provider|shared library|cuda|tensorrt|cudnn|cublas|device/i.test((err as Error).message)) throw err;
    throw providerError(provider, err);
  }
  const ready =
    (options.bucket ?? provider !== "cpu") ? await bucketed(session, models.gpu.embedBatch) : session;
  return models.standIn ? standInSession(ort, ready, models.standIn, options.detectorGrid) : ready;
}
