import { parentPort, workerData } from "node:worker_threads";
import type { Config } from "../../config/index.ts";
import type { EncodedFrame, FrameImage } from "../pixels/image.ts";
import { loadVisionPart } from "../inference/vision.ts";
import type { VisionRequest, VisionResponse, VisionWorkerData } from "./vision-thread.ts";

// Entry of a vision worker thread: opens the sessions of the pack the main thread resolved, then serves
// requests one at a time (ONNX Runtime's run blocks this thread, which is the point: not the main one).
const { config, role } = workerData as VisionWorkerData;
const port = parentPort!;

const transferables = (crops: FrameImage[]) => crops.map((c) => c.data.buffer as ArrayBuffer);

try {
  const analyzer = role === "analyzer" ? await loadVisionPart(config as Config, "analyzer") : undefined;
  const embedder = role === "embedder" ? await loadVisionPart(config as Config, "embedder") : undefined;
  port.on("message", async (request: VisionRequest) => {
    try {
      if (request.op === "analyze") {
        if (!analyzer) throw new Error("this worker embeds; it has no detector");
        const faces = await analyzer.analyze(request.image as FrameImage | EncodedFrame, request.options);
        const reply: VisionResponse = { id: request.id, ok: true, faces };
        port.postMessage(reply, transferables(faces.map((f) => f.crop)));
      } else if (request.op === "analyzeBatch") {
        if (!analyzer) throw new Error("this worker embeds; it has no detector");
        const batch = await analyzer.analyzeBatch(request.jobs);
        const reply: VisionResponse = { id: request.id, ok: true, batch };
        port.postMessage(reply, transferables(batch.flat().map((f) => f.crop)));
      } else {
        if (!embedder) throw new Error("this worker detects; it has no embedder");
        const vectors = await embedder.embed(request.crops);
        const reply: VisionResponse = { id: request.id, ok: true, vectors };
        port.postMessage(
          reply,
          vectors.map((v) => v.buffer as ArrayBuffer),
        );
      }
    } catch (err) {
      const e = err as Error;
      port.postMessage({ id: request.id, ok: false, error: { name: e.name, message: e.message } });
    }
  });
  port.postMessage({ ready: true });
} catch (err) {
  port.postMessage({ ready: false, error: (err as Error).message });
}
