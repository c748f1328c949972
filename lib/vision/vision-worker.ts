import { parentPort, workerData } from "node:worker_threads";
import type { Config } from "../config/index.ts";
import type { BgrImage, FrameImage } from "./image.ts";
import { loadVision } from "./vision.ts";
import type { VisionRequest, VisionResponse, VisionWorkerData } from "./vision-thread.ts";

// Entry of a vision worker thread: opens the sessions of the pack the main thread resolved, then serves
// requests one at a time (ONNX Runtime's run blocks this thread, which is the point: not the main one).
const { config } = workerData as VisionWorkerData;
const port = parentPort!;

const transferables = (crops: BgrImage[]) => crops.map((c) => c.data.buffer as ArrayBuffer);

try {
  const vision = await loadVision(config as Config);
  port.on("message", async (request: VisionRequest) => {
    try {
      if (request.op === "analyze") {
        const faces = await vision.analyzer.analyze(request.image as FrameImage);
        const reply: VisionResponse = { id: request.id, ok: true, faces };
        port.postMessage(reply, transferables(faces.map((f) => f.crop)));
      } else {
        const vectors = await vision.embedder.embed(request.crops);
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
