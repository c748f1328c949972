import { z } from "zod";
import type { ApiContext, ZodApp } from "../context.ts";
import { Alert, AlertPage, BoolString, Cursor, IdList, Limit, Time } from "../schemas.ts";
import { streamAlerts } from "../sse.ts";
import { alertsOut, audit, errors } from "./common.ts";

const AlertFilters = z.object({
  camera: IdList.optional().describe("camera ids, repeated or comma-separated"),
  person: z.string().min(1).optional(),
  watchlist: z.string().min(1).optional(),
  since: Time.optional(),
  until: Time.optional(),
  acknowledged: BoolString.optional(),
});

/** Alerts: stored (paged, filtered), acknowledged, and live over Server-Sent Events. */
export function alertRoutes(app: ZodApp, ctx: ApiContext) {
  app.get(
    "/v1/alerts",
    {
      config: { role: "viewer" },
      schema: {
        summary: "Alerts newest first, with filters; page with nextCursor",
        tags: ["alerts"],
        querystring: AlertFilters.extend({ limit: Limit, cursor: Cursor.optional() }),
        response: { 200: AlertPage, ...errors },
      },
    },
    async (request) => {
      const q = request.query;
      const page = await ctx.history.listAlerts({
        cameras: q.camera?.length ? q.camera : undefined,
        personId: q.person,
        watchlistId: q.watchlist,
        since: q.since,
        until: q.until,
        acknowledged: q.acknowledged,
        limit: q.limit,
        cursor: q.cursor,
      });
      const out = alertsOut(ctx.watchlist, request.principal?.role, ctx.clipped.alerts);
      return { items: await Promise.all(page.items.map(out)), nextCursor: page.nextCursor };
    },
  );

  app.get(
    "/v1/alerts/stream",
    {
      config: { role: "viewer" },
      schema: {
        summary: "Live alerts as Server-Sent Events (`event: alert`); reconnect with Last-Event-ID to resume",
        description:
          "Each event's `id` is the alert's position. A client that reconnects with `Last-Event-ID` (EventSource does " +
          "this itself) first gets the alerts it missed: exactly, from the API's memory of recent alerts, or, when " +
          "this process does not hold that alert (restart, another replica), from the store, starting " +
          "`api.sse.resumeSlackS` before it; dedupe by alert id. A comment line is sent every `api.sse.heartbeatS`.",
        tags: ["alerts"],
        querystring: z.object({
          camera: IdList.optional(),
          watchlist: IdList.optional(),
          person: z.string().min(1).optional(),
          lastEventId: z.string().optional().describe("for clients that cannot set the Last-Event-ID header"),
        }),
        headers: z.object({ "last-event-id": z.string().optional() }).loose(),
        produces: ["text/event-stream"],
      },
    },
    async (request, reply) => {
      const q = request.query;
      const sse = ctx.config.api.sse;
      await streamAlerts(
        request,
        reply,
        {
          feed: ctx.feed,
          store: ctx.store,
          options: {
            heartbeatMs: sse.heartbeatS * 1000,
            resumeSlackMs: sse.resumeSlackS * 1000,
            maxBufferedBytes: sse.maxBufferedBytes,
            maxReplay: sse.replay,
          },
        },
        { cameras: q.camera, watchlists: q.watchlist, personId: q.person },
        request.headers["last-event-id"] || q.lastEventId || undefined,
        // Looked up afresh for each alert: a stream outlives changes to the person's photos.
        (alert) => alertsOut(ctx.watchlist, request.principal?.role, ctx.clipped.alerts)(alert),
      );
    },
  );

  app.get(
    "/v1/alerts/:id",
    {
      config: { role: "viewer" },
      schema: {
        summary: "One alert",
        tags: ["alerts"],
        params: z.object({ id: z.string().min(1) }),
        response: { 200: Alert, ...errors },
      },
    },
    async (request) =>
      alertsOut(
        ctx.watchlist,
        request.principal?.role,
        ctx.clipped.alerts,
      )(await ctx.history.alert(request.params.id)),
  );

  app.get(
    "/v1/alerts/:id/crop",
    {
      config: { role: "viewer" },
      schema: {
        summary: "The face that alerted, as JPEG",
        tags: ["alerts"],
        params: z.object({ id: z.string().min(1) }),
        produces: ["image/jpeg"],
      },
    },
    async (request, reply) => {
      const crop = await ctx.history.alertCrop(request.params.id);
      return reply
        .type("image/jpeg")
        .header("cache-control", "private, max-age=3600")
        .send(Buffer.from(crop));
    },
  );

  app.post(
    "/v1/alerts/:id/ack",
    {
      config: { role: "operator", audit: "alert.acknowledge" },
      schema: {
        summary: "Acknowledge an alert (the first acknowledgement stands)",
        tags: ["alerts"],
        params: z.object({ id: z.string().min(1) }),
        // A bare POST (no note) arrives as null, not undefined.
        body: z.object({ note: z.string().max(2000).optional() }).nullish(),
        response: { 200: Alert, ...errors },
      },
    },
    async (request) => {
      audit(request, request.params.id, { note: request.body?.note });
      const record = await ctx.history.acknowledgeAlert(request.params.id, {
        by: request.principal!.name,
        note: request.body?.note,
      });
      return alertsOut(ctx.watchlist, request.principal?.role, ctx.clipped.alerts)(record);
    },
  );
}
