import * as ort from "onnxruntime-node";
import type { Config } from "../../config/index.ts";

export { ort };

/** One place that decides how ONNX Runtime sessions are made: execution provider, threads, denormals. */
export async function createSession(
  modelPath: string,
  models: Config["models"],
): Promise<ort.InferenceSession> {
  const providers: string[] =
    models.executionProvider === "cpu"
      ? ["cpu"]
      : models.executionProvider === "cuda"
        ? ["cuda", "cpu"]
        : ["tensorrt", "cuda", "cpu"];
  return ort.InferenceSession.create(modelPath, {
    executionProviders: providers,
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
  });
}
