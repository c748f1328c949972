import type { FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { NotFoundError } from "../../../lib/store/errors.ts";
import type { ClipKind } from "../../../lib/store/clip-store.ts";
import type { ApiContext, ZodApp } from "../context.ts";
import { audit } from "./common.ts";

/**
 * One range of `bytes=a-b` (what a browser's `<video>` asks for: one at a time); undefined for none or a form it
 * does not send (several ranges), which is answered with the whole clip.
 */
export function byteRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | "unsatisfiable" | undefined {
  const m = header ? /^bytes=(\d*)-(\d*)$/.exec(header.trim()) : null;
  if (!m || (m[1] === "" && m[2] === "")) return undefined;
  if (m[1] === "") {
    // The last n bytes.
    const n = Number(m[2]);
    if (n === 0) return "unsatisfiable";
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return "unsatisfiable";
  return { start, end };
}

/**
 * The record a clip is asked for. Its absence is most often retention's doing (a link kept from an alert or an
 * export outlives the record): the 404 says so, with how long such records are kept, since a clip goes with it.
 */
async function expired<T>(record: Promise<T>, keptDays: number): Promise<T> {
  try {
    return await record;
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
    throw new NotFoundError(
      `${err.message}: it was never stored, or it is older than the ${keptDays} days such records are kept ` +
        `and retention has deleted it, with its clip`,
    );
  }
}

/** The clip's video, or the part of it the Range header asks for; its span and shortfall in headers. */
async function sendClip(
  ctx: ApiContext,
  request: FastifyRequest,
  reply: FastifyReply,
  kind: ClipKind,
  record: { id: string; cameraId: string; ts: number },
) {
  const info = await ctx.clips.info(kind, record.id, record.ts);
  if (!info) {
    const why = ctx.clipped.why(kind, record.cameraId);
    throw new NotFoundError(
      why
        ? `no clip of ${record.id}: ${why}`
        : `no clip of ${record.id} yet: it is cut once the recording holds its post-roll (a few seconds after it)`,
    );
  }
  if (info.none) throw new NotFoundError(`no clip of ${record.id}: ${info.none}`);
  const video = await ctx.clips.video(kind, record.id, record.ts);
  // The info outlives its video only when retention is part way through deleting them.
  if (!video) throw new NotFoundError(`no clip of ${record.id}: it has been deleted`);
  reply.header("vigil-clip-start", String(info.start)).header("vigil-clip-end", String(info.end));
  if (info.short) reply.header("vigil-clip-short", encodeURIComponent(info.short));
  if (info.frame) reply.header("vigil-clip-frame", `${info.frame.width}x${info.frame.height}`);
  return sendVideo(request, reply, video);
}

/** An MP4 as a whole, or the byte range the request asks for (what a `<video>` seeking in it sends). */
export function sendVideo(request: FastifyRequest, reply: FastifyReply, video: Uint8Array) {
  reply.header("accept-ranges", "bytes").header("cache-control", "private, max-age=3600");
  const range = byteRange(request.headers.range, video.length);
  if (range === "unsatisfiable")
    return reply.code(416).header("content-range", `bytes */${video.length}`).send();
  if (!range) return reply.type("video/mp4").send(Buffer.from(video));
  return reply
    .code(206)
    .type("video/mp4")
    .header("content-range", `bytes ${range.start}-${range.end}/${video.length}`)
    .send(Buffer.from(video.subarray(range.start, range.end + 1)));
}

const clipSchema = (tag: string, what: string) => ({
  summary: `The video around the ${what} (MP4, seekable: Range requests)`,
  description:
    "From the camera's pre-roll before it to the post-roll after it, copied as the camera sent it. Headers " +
    "`vigil-clip-start` and `vigil-clip-end` give the wall-clock span (ms), `vigil-clip-short` (URI-encoded) why " +
    "it is shorter than asked (the camera dropped), `vigil-clip-frame` (WxH) the frame size the record's box is " +
    "measured in, to draw it over the video. 404 says why there is none: the camera is not recorded, the " +
    "clip is not cut yet, nothing was recorded then, or it has expired with its record.",
  tags: [tag],
  params: z.object({ id: z.string().min(1) }),
  produces: ["video/mp4"],
});

export function clipRoutes(app: ZodApp, ctx: ApiContext) {
  app.get(
    "/v1/alerts/:id/clip",
    { config: { role: "viewer", audit: "export.alert-clip" }, schema: clipSchema("alerts", "alert") },
    async (request, reply) => {
      audit(request, request.params.id, { range: request.headers.range ?? null });
      const alert = await expired(ctx.history.alert(request.params.id), ctx.config.store.alertRetentionDays);
      return sendClip(ctx, request, reply, "alerts", alert);
    },
  );
  app.get(
    "/v1/sightings/:id/clip",
    {
      config: { role: "operator", audit: "export.sighting-clip" },
      schema: clipSchema("sightings", "sighting"),
    },
    async (request, reply) => {
      audit(request, request.params.id, { range: request.headers.range ?? null });
      const s = await expired(ctx.history.sighting(request.params.id), ctx.config.store.retentionDays);
      return sendClip(ctx, request, reply, "sightings", { id: s.id, cameraId: s.cameraId, ts: s.startTs });
    },
  );
}
