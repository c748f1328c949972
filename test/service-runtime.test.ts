import { describe, expect, it } from "vitest";
import { MemoryBus } from "../lib/bus/index.ts";
import { EmbeddingContract, FaceContract, Topics, type EmbeddingMessage } from "../lib/contracts/index.ts";
import { serve as serveEmbed } from "../services/embed/main.ts";
import { testConfig } from "./helpers.ts";

const crop = (seed: number) =>
  Uint8Array.from({ length: 128 * 128 * 3 }, (_, i) => (i * 7 + seed * 13) & 0xff);
const face = (i: number) =>
  FaceContract.encode({
    faceId: `cam-1:${i}:0`,
    cameraId: "cam-1",
    frameSeq: i,
    captureTs: Date.now(),
    frameWidth: 640,
    frameHeight: 480,
    box: { x: 10, y: 10, width: 100, height: 100 },
    landmarks: [
      [40, 50],
      [80, 50],
      [60, 70],
      [45, 90],
      [75, 90],
    ],
    quality: { faceSize: 100, interOcular: 40, sharpness: 100, yawDeg: 0, pitchDeg: 0, detScore: 0.9 },
    detectorModel: "test",
    cropSize: { width: 128, height: 128 },
    crop: crop(i),
  });

describe("a stage as a service (runService)", () => {
  it("serves /healthz, /readyz once its models are loaded, and /metrics; handles its input; stops with exit code 0", async () => {
    const config = testConfig({
      "service.host": "127.0.0.1",
      "service.port": 0,
      "models.inferenceWorkers": true,
      "models.embedWorkers": 1,
    });
    const bus = new MemoryBus({ capacity: 64 });
    const out: EmbeddingMessage[] = [];
    await bus.subscribe(Topics.embeddings, { group: "test" }, async (rs) => {
      for (const r of rs) out.push(EmbeddingContract.decode(r.value));
    });
    // A malformed record as well: the service dead-letters it and keeps going.
    await bus.publish(
      Topics.faces,
      [1, 2, 3].map((i) => ({ key: "cam-1", value: face(i) })),
    );
    await bus.publish(Topics.faces, [{ key: "cam-1", value: new TextEncoder().encode("not a face") }]);
    const service = await serveEmbed(config, bus);
    const base = `http://127.0.0.1:${service.address.port}`;
    try {
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      const ready = await fetch(`${base}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({ ready: true, checks: { started: true, bus: true } });
      await bus.drain();
      expect(out.map((e) => e.faceId)).toEqual(["cam-1:1:0", "cam-1:2:0", "cam-1:3:0"]);
      for (const e of out) expect(e.dim).toBeGreaterThan(0);
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toMatch(/vigil_batch_size_count\{[^}]*stage="embed"[^}]*\} [1-9]/);
      expect(metrics).toMatch(/vigil_dead_letters_total\{[^}]*topic="vigil.faces"[^}]*\} 1/);
      expect((await fetch(`${base}/nope`)).status).toBe(404);
    } finally {
      expect(await service.stop("test")).toBe(0);
    }
    expect(await service.exited).toBe(0);
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  });
});
