import { z } from "zod";
import type { ApiContext, ZodApp } from "../context.ts";
import {
  Binary,
  Cursor,
  IdList,
  Limit,
  SearchResult,
  Sighting,
  SightingPage,
  Time,
  Timeline,
} from "../schemas.ts";
import { photoSummary, readPhotoForm } from "../upload.ts";
import { audit, defined, errors, sightingOut, uploadErrors } from "./common.ts";

const SearchFields = z.object({
  camera: IdList.optional().describe("camera ids, repeated or comma-separated"),
  since: Time.optional(),
  until: Time.optional(),
  limit: Limit.default(20),
  offset: z.coerce.number().int().min(0).default(0).describe("`nextOffset` of the previous page"),
});

const TimelineRange = z.object({
  since: Time.optional(),
  until: Time.optional(),
  mergeGapS: z.coerce
    .number()
    .min(0)
    .max(86_400)
    .default(60)
    .describe("merge sightings on one camera closer than this"),
});

/** History: sightings by photo or by filters, their crops, and a person's path across cameras. */
export function historyRoutes(app: ZodApp, ctx: ApiContext) {
  app.get(
    "/v1/sightings",
    {
      config: { role: "operator", audit: "sightings.browse" },
      schema: {
        summary: "Sightings newest first by camera, time and matched person, without a photo",
        tags: ["sightings"],
        querystring: z.object({
          camera: IdList.optional(),
          person: z.string().min(1).optional(),
          since: Time.optional(),
          until: Time.optional(),
          limit: Limit,
          cursor: Cursor.optional(),
        }),
        response: { 200: SightingPage, ...errors },
      },
    },
    async (request) => {
      const q = request.query;
      audit(
        request,
        q.person ?? null,
        defined({ cameras: q.camera, since: q.since, until: q.until, limit: q.limit }),
      );
      const page = await ctx.history.browseSightings({
        cameras: q.camera?.length ? q.camera : undefined,
        personId: q.person,
        since: q.since,
        until: q.until,
        limit: q.limit,
        cursor: q.cursor,
      });
      return {
        items: page.items.map((s) => sightingOut(s, ctx.clipped.sightings)),
        nextCursor: page.nextCursor,
      };
    },
  );

  app.post(
    "/v1/sightings/search",
    {
      config: {
        role: "operator",
        audit: "search",
        multipart: SearchFields.extend({ photo: Binary.describe("one photo showing one face") }),
      },
      schema: {
        summary: "Where has this face been? Stored sightings ranked by similarity to the face in a photo",
        description:
          "multipart/form-data: `photo` and optional `camera`, `since`, `until`, `limit`, `offset`. Finds people who " +
          "were never enrolled too. Page with `offset` = `nextOffset`.",
        tags: ["sightings"],
        response: { 200: SearchResult, ...uploadErrors },
      },
    },
    async (request) => {
      audit(request, null);
      const { fields, photos } = await readPhotoForm(request, SearchFields, ctx.limits, { maxPhotos: 1 });
      const photo = photos[0]!;
      audit(
        request,
        null,
        defined({
          photo: photoSummary(photo),
          cameras: fields.camera,
          since: fields.since,
          until: fields.until,
          limit: fields.limit,
          offset: fields.offset,
        }),
      );
      const result = await ctx.history.searchByPhoto(
        { name: photo.name, bytes: photo.bytes },
        {
          cameras: fields.camera?.length ? fields.camera : undefined,
          since: fields.since,
          until: fields.until,
          limit: fields.limit,
          offset: fields.offset,
        },
      );
      request.auditInfo!.summary!.hits = result.hits.length;
      return {
        ...result,
        hits: result.hits.map((h) => ({ ...h, sighting: sightingOut(h.sighting, ctx.clipped.sightings) })),
      };
    },
  );

  app.get(
    "/v1/sightings/:id",
    {
      config: { role: "operator" },
      schema: {
        summary: "One sighting",
        tags: ["sightings"],
        params: z.object({ id: z.string().min(1) }),
        response: { 200: Sighting, ...errors },
      },
    },
    async (request) => sightingOut(await ctx.history.sighting(request.params.id), ctx.clipped.sightings),
  );

  app.get(
    "/v1/sightings/:id/crop",
    {
      config: { role: "operator", audit: "export.sighting-crop" },
      schema: {
        summary: "The sighting's best face, as JPEG",
        tags: ["sightings"],
        params: z.object({ id: z.string().min(1) }),
        produces: ["image/jpeg"],
      },
    },
    async (request, reply) => {
      audit(request, request.params.id);
      const crop = await ctx.history.sightingCrop(request.params.id);
      return reply
        .type("image/jpeg")
        .header("cache-control", "private, max-age=3600")
        .send(Buffer.from(crop));
    },
  );

  app.get(
    "/v1/timeline",
    {
      config: { role: "operator", audit: "timeline.person" },
      schema: {
        summary: "A person's path across cameras, from their watchlist matches",
        tags: ["timeline"],
        querystring: TimelineRange.extend({ person: z.string().min(1) }),
        response: { 200: Timeline, ...errors },
      },
    },
    async (request) => {
      const q = request.query;
      audit(request, q.person, defined({ since: q.since, until: q.until, mergeGapS: q.mergeGapS }));
      return ctx.history.timeline(
        { personId: q.person },
        { since: q.since, until: q.until, mergeGapMs: q.mergeGapS * 1000 },
      );
    },
  );

  app.post(
    "/v1/timeline",
    {
      config: {
        role: "operator",
        audit: "timeline.photo",
        multipart: TimelineRange.extend({ photo: Binary }),
      },
      schema: {
        summary:
          "A face's path across cameras, from a photo (every sighting at or above the calibrated threshold)",
        description: "multipart/form-data: `photo` and optional `since`, `until`, `mergeGapS`.",
        tags: ["timeline"],
        response: { 200: Timeline, ...uploadErrors },
      },
    },
    async (request) => {
      audit(request, null);
      const { fields, photos } = await readPhotoForm(request, TimelineRange, ctx.limits, { maxPhotos: 1 });
      const photo = photos[0]!;
      audit(request, null, defined({ photo: photoSummary(photo), since: fields.since, until: fields.until }));
      return ctx.history.timeline(
        { photo: { name: photo.name, bytes: photo.bytes } },
        { since: fields.since, until: fields.until, mergeGapMs: fields.mergeGapS * 1000 },
      );
    },
  );
}
