import { z } from "zod";
import { isUnknownId } from "../../../lib/identities/identity.ts";
import { NotFoundError } from "../../../lib/store/errors.ts";
import { Follows, nextCameras } from "../../../lib/watchlist/follows.ts";
import type { ApiContext, ZodApp } from "../context.ts";
import { Sighting } from "../schemas.ts";
import { audit, errors, sightingOut } from "./common.ts";

const Follow = z
  .object({ personId: z.string(), until: z.number(), by: z.string(), since: z.number() })
  .meta({ id: "Follow" });
const Next = z.array(z.object({ cameraId: z.string(), transitS: z.number().nullable() }));
const Id = z.object({ id: z.string().min(1) });

/**
 * Following a person (or unknown identity) live, as `vigil follow` does: while followed, every pass of theirs
 * alerts past the cool-down; GET gives their latest sightings newest first and where the camera map says they may
 * appear next, for a view that polls it.
 */
export function followRoutes(app: ZodApp, ctx: ApiContext) {
  const follows = new Follows(ctx.store, ctx.clock);

  const exists = async (id: string) =>
    isUnknownId(id) ? !!(await ctx.store.unknowns.getUnknown(id)) : !!(await ctx.store.getPerson(id));

  app.put(
    "/v1/follows/:id",
    {
      config: { role: "operator", audit: "follow.start" },
      schema: {
        summary:
          "Follow a person (or unknown identity) live: every pass of a watchlist person alerts, cool-down or " +
          "not; an unknown identity never alerts, its sightings show as they are stored",
        tags: ["follow"],
        params: Id,
        body: z
          .object({
            forS: z
              .number()
              .positive()
              .max(7 * 86_400)
              .default(3600),
          })
          // No body at all is the hour's default: a bare PUT arrives as null, not undefined.
          .nullish(),
        response: { 200: Follow, ...errors },
      },
    },
    async (request) => {
      const { id } = request.params;
      const forS = request.body?.forS ?? 3600;
      audit(request, id, { forS });
      if (!(await exists(id))) throw new NotFoundError(`no person or unknown identity ${id}`);
      return follows.follow(id, forS * 1000, request.principal?.name ?? "api");
    },
  );

  app.delete(
    "/v1/follows/:id",
    {
      config: { role: "operator", audit: "follow.stop" },
      schema: { summary: "Stop following", tags: ["follow"], params: Id },
    },
    async (request, reply) => {
      audit(request, request.params.id);
      if (!(await follows.unfollow(request.params.id)))
        throw new NotFoundError(`${request.params.id} is not followed`);
      return reply.code(204).send();
    },
  );

  app.get(
    "/v1/follows",
    {
      config: { role: "operator" },
      schema: {
        summary: "Who is followed now",
        tags: ["follow"],
        response: { 200: z.object({ items: z.array(Follow) }), ...errors },
      },
    },
    async () => ({ items: await follows.list() }),
  );

  app.get(
    "/v1/follows/:id",
    {
      config: { role: "operator" },
      schema: {
        summary: "A followed person's latest sightings, newest first, and where they may appear next",
        tags: ["follow"],
        params: Id,
        response: {
          200: z.object({ follow: Follow.nullable(), sightings: z.array(Sighting), next: Next }),
          ...errors,
        },
      },
    },
    async (request) => {
      const { id } = request.params;
      if (!(await exists(id))) throw new NotFoundError(`no person or unknown identity ${id}`);
      const page = await ctx.store.browse({
        ...(isUnknownId(id) ? { unknownId: id } : { personId: id }),
        limit: 20,
      });
      const latest = page.items[0];
      return {
        follow: (await follows.list()).find((f) => f.personId === id) ?? null,
        sightings: page.items.map((s) => sightingOut(s, ctx.clipped.sightings)),
        next: latest ? nextCameras(ctx.config, latest.cameraId) : [],
      };
    },
  );
}
