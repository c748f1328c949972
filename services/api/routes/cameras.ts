import { z } from "zod";
import type { FrameMessage } from "../../../lib/contracts/index.ts";
import { NotFoundError } from "../../../lib/store/errors.ts";
import { yuv420ToBgr } from "../../../lib/vision/pixels/yuv.ts";
import { encodeJpeg } from "../../../lib/vision/pixels/image.ts";
import type { ApiContext, ZodApp } from "../context.ts";
import { Camera } from "../schemas.ts";
import { errors } from "./common.ts";

type CameraOut = z.infer<typeof Camera>;

async function frameJpeg(f: FrameMessage): Promise<Uint8Array> {
  if (f.format === "jpeg") return f.image;
  const bgr =
    f.format === "yuv420p"
      ? yuv420ToBgr({ format: "yuv420p", width: f.width, height: f.height, data: f.image })
      : { width: f.width, height: f.height, data: f.image };
  return encodeJpeg(bgr, 80);
}

/** Cameras: the configured ones and any ingest reports, with the newest state and counters of each. */
export function cameraRoutes(app: ZodApp, ctx: ApiContext) {
  const list = (): CameraOut[] => {
    const ids = new Set([
      ...ctx.config.cameras.map((c) => c.id),
      ...ctx.feed.cameras.keys(),
      ...ctx.feed.snapshotCameras(),
    ]);
    const configured = new Set(ctx.config.cameras.map((c) => c.id));
    return [...ids].sort().map((id) => {
      const s = ctx.feed.cameras.get(id);
      return {
        id,
        state: (s?.state ?? "unknown") as CameraOut["state"],
        ts: s?.ts ?? null,
        lastError: s?.lastError ?? null,
        framesIn: s?.framesIn ?? 0,
        framesDropped: s?.framesDropped ?? 0,
        framesUndecodable: s?.framesUndecodable ?? 0,
        reconnects: s?.reconnects ?? 0,
        configured: configured.has(id),
        snapshotTs: ctx.feed.snapshot(id)?.captureTs ?? null,
        recording: s?.recording ?? null,
      };
    });
  };

  app.get(
    "/v1/cameras",
    {
      config: { role: "viewer" },
      schema: {
        summary: "Cameras with their live state and counters (from vigil.camera-status)",
        tags: ["cameras"],
        response: { 200: z.object({ items: z.array(Camera) }), ...errors },
      },
    },
    async () => ({ items: list() }),
  );

  app.get(
    "/v1/cameras/:id",
    {
      config: { role: "viewer" },
      schema: {
        summary: "One camera",
        tags: ["cameras"],
        params: z.object({ id: z.string().min(1) }),
        response: { 200: Camera, ...errors },
      },
    },
    async (request) => {
      const found = list().find((c) => c.id === request.params.id);
      if (!found) throw new NotFoundError(`no camera ${request.params.id}`);
      return found;
    },
  );

  app.get(
    "/v1/cameras/:id/snapshot",
    {
      config: { role: "viewer" },
      schema: {
        summary: "The camera's newest frame as JPEG (api.snapshots must be on)",
        tags: ["cameras"],
        params: z.object({ id: z.string().min(1) }),
        produces: ["image/jpeg"],
      },
    },
    async (request, reply) => {
      const frame = ctx.feed.snapshot(request.params.id);
      if (!frame)
        throw new NotFoundError(
          ctx.config.api.snapshots
            ? `no frame from camera ${request.params.id} yet`
            : "snapshots are off (api.snapshots)",
        );
      reply.header("x-capture-ts", String(frame.captureTs)).header("cache-control", "no-store");
      return reply.type("image/jpeg").send(Buffer.from(await frameJpeg(frame)));
    },
  );
}
