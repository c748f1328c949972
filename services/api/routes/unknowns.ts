import { z } from "zod";
import type { ApiContext, ZodApp } from "../context.ts";
import {
  Cursor,
  ErrorBody,
  IdList,
  Limit,
  SightingPage,
  Time,
  UnknownIdentity,
  UnknownPage,
} from "../schemas.ts";
import { audit, defined, errors, sightingOut } from "./common.ts";

const IdParam = z.object({ id: z.string().min(1).max(200) });
const Name = z.string().min(1).max(200);
export const PromoteResult = z.object({
  personId: z.string(),
  enrolled: z.array(z.string()).describe("sightings whose crops were enrolled as the person's photos"),
  rejected: z
    .array(z.object({ sightingId: z.string(), reason: z.string() }))
    .describe("sightings whose crops the enrolment refused, with its reason"),
});
const PromoteRefused = ErrorBody.extend(PromoteResult.shape);

/**
 * Unknown identities: strangers the match stage grouped by face. Operators list and inspect them, name them,
 * promote one to the watchlist, merge two, split wrong sightings off, or delete one. Every call is audited.
 */
export function unknownRoutes(app: ZodApp, ctx: ApiContext) {
  const { unknowns } = ctx;

  app.get(
    "/v1/unknowns",
    {
      config: { role: "operator", audit: "unknown.list" },
      schema: {
        summary: "Unknown identities, most recently seen first",
        tags: ["unknowns"],
        querystring: z.object({
          camera: IdList.optional().describe("seen on any of these cameras; repeated or comma-separated"),
          seenSince: Time.optional().describe("last seen at or after"),
          seenUntil: Time.optional().describe("first seen at or before"),
          limit: Limit,
          cursor: Cursor.optional(),
        }),
        response: { 200: UnknownPage, ...errors },
      },
    },
    async (request) => {
      const q = request.query;
      audit(
        request,
        null,
        defined({ cameras: q.camera, seenSince: q.seenSince, seenUntil: q.seenUntil, limit: q.limit }),
      );
      return unknowns.list({
        cameras: q.camera?.length ? q.camera : undefined,
        seenSince: q.seenSince,
        seenUntil: q.seenUntil,
        limit: q.limit,
        cursor: q.cursor,
      });
    },
  );

  app.get(
    "/v1/unknowns/:id",
    {
      config: { role: "operator", audit: "unknown.view" },
      schema: {
        summary: "One unknown identity",
        tags: ["unknowns"],
        params: IdParam,
        response: { 200: UnknownIdentity, ...errors },
      },
    },
    async (request) => {
      audit(request, request.params.id);
      return unknowns.get(request.params.id);
    },
  );

  app.get(
    "/v1/unknowns/:id/sightings",
    {
      config: { role: "operator", audit: "unknown.sightings" },
      schema: {
        summary: "An unknown identity's sightings, newest first",
        tags: ["unknowns"],
        params: IdParam,
        querystring: z.object({ limit: Limit, cursor: Cursor.optional() }),
        response: { 200: SightingPage, ...errors },
      },
    },
    async (request) => {
      audit(request, request.params.id, { limit: request.query.limit });
      const page = await unknowns.sightings(request.params.id, {
        limit: request.query.limit,
        cursor: request.query.cursor,
      });
      return {
        items: page.items.map((s) => sightingOut(s, ctx.clipped.sightings)),
        nextCursor: page.nextCursor,
      };
    },
  );

  app.put(
    "/v1/unknowns/:id/name",
    {
      config: { role: "operator", audit: "unknown.name" },
      schema: {
        summary: "Name an unknown identity (null clears the name)",
        tags: ["unknowns"],
        params: IdParam,
        body: z.object({ name: Name.nullable() }),
        response: { 200: UnknownIdentity, ...errors },
      },
    },
    async (request) => {
      audit(request, request.params.id, { name: request.body.name });
      return unknowns.name(request.params.id, request.body.name);
    },
  );

  app.post(
    "/v1/unknowns/:id/promote",
    {
      // Promotion enrols faces into a watchlist person, which is an admin's right like any enrolment: an operator
      // could otherwise put a stranger's face under an existing person's name.
      config: { role: "admin", audit: "unknown.promote" },
      schema: {
        summary: "Promote an unknown identity to a watchlist person, enrolled from its best crops",
        description:
          "Each best crop goes through the normal enrolment (one face, quality gate); refusals are listed per " +
          "sighting. 422 (nothing stored for a new person) when no crop was accepted. From then on the person " +
          "alerts like anyone enrolled.",
        tags: ["unknowns"],
        params: IdParam,
        body: z.object({
          watchlist: Name.optional().describe("default: the person's current watchlist, or `default`"),
          name: Name.optional().describe("default: the identity's name, else the person id"),
          personId: Name.optional().describe("default: the identity's id"),
        }),
        response: { 200: PromoteResult, ...errors, 422: PromoteRefused },
      },
    },
    async (request, reply) => {
      const b = request.body;
      audit(
        request,
        request.params.id,
        defined({ personId: b.personId, name: b.name, watchlist: b.watchlist }),
      );
      const result = await unknowns.promote(request.params.id, {
        personId: b.personId,
        name: b.name,
        watchlistId: b.watchlist,
      });
      Object.assign(request.auditInfo!.summary!, {
        personId: result.personId,
        enrolled: result.enrolled.length,
        rejected: result.rejected.length,
      });
      if (result.enrolled.length === 0)
        return reply.code(422).send({
          error: "unprocessable",
          message: `no crop was enrolled: ${result.rejected.map((r) => `${r.sightingId}: ${r.reason}`).join("; ") || "the identity has no photos"}`,
          ...result,
        });
      return result;
    },
  );

  app.post(
    "/v1/unknowns/:id/merge",
    {
      config: { role: "operator", audit: "unknown.merge" },
      schema: {
        summary: "Merge identity `from` into this one",
        tags: ["unknowns"],
        params: IdParam,
        body: z.object({ from: z.string().min(1).max(200) }),
        response: { 200: UnknownIdentity, ...errors },
      },
    },
    async (request) => {
      audit(request, request.params.id, { from: request.body.from });
      return unknowns.merge(request.params.id, request.body.from);
    },
  );

  app.post(
    "/v1/unknowns/:id/split",
    {
      config: { role: "operator", audit: "unknown.split" },
      schema: {
        summary: "Split sightings off into a new identity, which is returned",
        tags: ["unknowns"],
        params: IdParam,
        body: z.object({ sightingIds: z.array(z.string().min(1).max(400)).min(1).max(1000) }),
        response: { 201: UnknownIdentity, ...errors },
      },
    },
    async (request, reply) => {
      audit(request, request.params.id, { sightingIds: request.body.sightingIds });
      const created = await unknowns.split(request.params.id, request.body.sightingIds);
      request.auditInfo!.summary!.created = created.id;
      return reply.code(201).send(created);
    },
  );

  app.delete(
    "/v1/unknowns/:id",
    {
      config: { role: "operator", audit: "unknown.delete" },
      schema: {
        summary: "Delete an unknown identity (its sightings stay, unlabelled)",
        tags: ["unknowns"],
        params: IdParam,
        response: { 204: z.undefined(), ...errors },
      },
    },
    async (request, reply) => {
      audit(request, request.params.id);
      await unknowns.delete(request.params.id);
      return reply.code(204).send();
    },
  );
}
