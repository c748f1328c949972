import { z } from "zod";
import { NotFoundError } from "../../../lib/store/errors.ts";
import type { ApiContext, ZodApp } from "../context.ts";
import { Time } from "../schemas.ts";
import { sendVideo } from "./clips.ts";
import { audit, errors } from "./common.ts";

const ExportId = z.object({ id: z.string().regex(/^[0-9a-f]{16}$/, "an export id is 16 hex digits") });

const ExportJob = z
  .object({
    id: z.string(),
    state: z.enum(["running", "failed", "done"]),
    done: z.number().optional().describe("clips finished (running)"),
    total: z.number().nullable().optional().describe("clips to do (running; null until planned)"),
    error: z.string().optional().describe("why it failed"),
    manifest: z
      .record(z.string(), z.unknown())
      .optional()
      .describe(
        "done: the manifest (files with cameras, spans, visits, sha256; visits without a clip and why)",
      ),
  })
  .meta({ id: "ExportJob" });

/**
 * Redacted exports for admins: the same export as `vigil export`, run in the background of this API process and
 * kept in the crop store (so any replica hands out a finished one, and takes over one whose replica stopped)
 * until deleted.
 */
export function exportRoutes(app: ZodApp, ctx: ApiContext) {
  app.post(
    "/v1/exports",
    {
      config: { role: "admin", audit: "export.person" },
      schema: {
        summary: "Export a person's visits as video, every other face masked (starts in the background)",
        description:
          "202 with the export's id once its clips are known; 400 when the person has no visits in the range, or " +
          "none with a clip, 404 for no such person. Poll GET /v1/exports/{id}; redaction takes about as long as " +
          "the video.",
        tags: ["exports"],
        body: z.object({
          person: z.string().min(1).describe("a watchlist person's id, or an unknown identity's"),
          from: Time.optional(),
          to: Time.optional(),
          redact: z.enum(["others", "none"]).default("others"),
        }),
        response: { 202: ExportJob, ...errors, 503: errors[404] },
      },
    },
    async (request, reply) => {
      const { person, from, to, redact } = request.body;
      audit(request, person, { from: from ?? null, to: to ?? null, redact });
      if (redact === "others" && !ctx.videoModels)
        return reply.code(503).send({
          error: "unavailable",
          message:
            "this API process has no face models to mask faces with: export with redact none, or use vigil export",
        });
      const { id } = await ctx.exports.start({ person, from, to, redact });
      return reply.code(202).send({ id, state: "running", done: 0, total: null });
    },
  );

  app.get(
    "/v1/exports/:id",
    {
      config: { role: "admin" },
      schema: {
        summary: "Where an export stands: running, failed (why), or done (its manifest)",
        tags: ["exports"],
        params: ExportId,
        response: { 200: ExportJob, ...errors },
      },
    },
    async (request) => {
      const job = await ctx.exports.get(request.params.id);
      if (!job) throw new NotFoundError(`no export ${request.params.id}`);
      return job as z.output<typeof ExportJob>;
    },
  );

  app.get(
    "/v1/exports/:id/files/:file",
    {
      config: { role: "admin", audit: "export.file" },
      schema: {
        summary: "One file of a finished export (MP4, byte ranges)",
        tags: ["exports"],
        params: ExportId.extend({ file: z.string().min(1) }),
        produces: ["video/mp4"],
      },
    },
    async (request, reply) => {
      audit(request, `${request.params.id}/${request.params.file}`);
      const bytes = await ctx.exports.file(request.params.id, request.params.file);
      if (!bytes)
        throw new NotFoundError(`export ${request.params.id} has no finished file ${request.params.file}`);
      return sendVideo(request, reply, bytes);
    },
  );

  app.delete(
    "/v1/exports/:id",
    {
      config: { role: "admin", audit: "export.delete" },
      schema: {
        summary: "Delete a finished export's files, or a failed export's record",
        tags: ["exports"],
        params: ExportId,
      },
    },
    async (request, reply) => {
      audit(request, request.params.id);
      if (!(await ctx.exports.delete(request.params.id)))
        throw new NotFoundError(`no finished or failed export ${request.params.id}`);
      return reply.code(204).send();
    },
  );
}
