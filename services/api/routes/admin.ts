import { z } from "zod";
import { ROLES } from "../../../lib/store/key-store.ts";
import { NotFoundError } from "../../../lib/store/errors.ts";
import type { ApiContext, ZodApp } from "../context.ts";
import { ApiKey, AuditEntry, Cursor, Delivery, Limit, Time, WebhookOut } from "../schemas.ts";
import { audit, defined, errors } from "./common.ts";

/** Keys, the audit log and webhooks: admins only. */
export function adminRoutes(app: ZodApp, ctx: ApiContext) {
  app.get(
    "/v1/keys",
    {
      config: { role: "admin" },
      schema: {
        summary: "API keys (never their secrets)",
        tags: ["keys"],
        response: { 200: z.object({ items: z.array(ApiKey) }), ...errors },
      },
    },
    async () => ({ items: await ctx.keys.list() }),
  );

  app.post(
    "/v1/keys",
    {
      config: { role: "admin", audit: "key.create.request" },
      schema: {
        summary: "Create an API key; the key is in this answer only",
        tags: ["keys"],
        body: z.object({
          name: z.string().min(1).max(200),
          role: z.enum(ROLES),
          rateLimitPerMinute: z.number().int().positive().nullable().optional(),
        }),
        response: { 201: z.object({ key: z.string(), record: ApiKey }), ...errors },
      },
    },
    async (request, reply) => {
      audit(request, null, { name: request.body.name, role: request.body.role });
      const p = request.principal!;
      const created = await ctx.keys.create(request.body, p, request.ip);
      request.auditInfo!.target = created.record.id;
      return reply.code(201).send(created);
    },
  );

  app.delete(
    "/v1/keys/:id",
    {
      config: { role: "admin", audit: "key.revoke.request" },
      schema: {
        summary: "Revoke an API key (it stops working at once)",
        tags: ["keys"],
        params: z.object({ id: z.string().min(1).max(100) }),
        response: { 200: ApiKey, ...errors },
      },
    },
    async (request) => {
      audit(request, request.params.id);
      return ctx.keys.revoke(request.params.id, request.principal!, request.ip);
    },
  );

  app.get(
    "/v1/audit",
    {
      config: { role: "admin", audit: "audit.read" },
      schema: {
        summary:
          "The audit log, newest first: who searched, enrolled, removed, exported or changed keys, and when",
        tags: ["audit"],
        querystring: z.object({
          since: Time.optional(),
          until: Time.optional(),
          action: z.string().min(1).optional().describe("an action or a family: `search`, `person`, `key`"),
          key: z.string().min(1).optional().describe("only this API key's entries"),
          limit: Limit,
          cursor: Cursor.optional(),
        }),
        response: {
          200: z.object({ items: z.array(AuditEntry), nextCursor: z.string().nullable() }),
          ...errors,
        },
      },
    },
    async (request) => {
      const q = request.query;
      audit(request, null, defined({ since: q.since, until: q.until, action: q.action, key: q.key }));
      return ctx.apiStore.listAudit({
        since: q.since,
        until: q.until,
        action: q.action,
        keyId: q.key,
        limit: q.limit,
        cursor: q.cursor,
      });
    },
  );

  app.get(
    "/v1/audit/verify",
    {
      config: { role: "admin" },
      schema: {
        summary: "Check the audit log's hash chain: every entry follows from the ones before it",
        tags: ["audit"],
        response: {
          200: z.object({
            ok: z.boolean(),
            entries: z.number(),
            brokenAt: z.number().optional(),
            /** Where the kept log starts after retention trimmed it; null while nothing was trimmed. */
            anchor: z.object({ seq: z.number(), hash: z.string(), ts: z.number() }).nullable(),
          }),
          ...errors,
        },
      },
    },
    async () => ctx.apiStore.verifyAudit(),
  );

  const hooks = () => {
    if (!ctx.webhooks) throw new NotFoundError("webhooks are not running in this process");
    return ctx.webhooks;
  };
  const webhookOut = ({ secret: _secret, ...w }: { secret: string } & z.infer<typeof WebhookOut>) => w;

  app.get(
    "/v1/webhooks",
    {
      config: { role: "admin" },
      schema: {
        summary: "Webhooks (alerts POSTed, signed, to a URL)",
        tags: ["webhooks"],
        response: { 200: z.object({ items: z.array(WebhookOut) }), ...errors },
      },
    },
    async () => ({ items: (await hooks().list()).map(webhookOut) }),
  );

  app.post(
    "/v1/webhooks",
    {
      config: { role: "admin", audit: "webhook.create" },
      schema: {
        summary: "Subscribe a URL to the alerts of some watchlists (all when none is given)",
        description:
          'Each alert is POSTed as JSON with `X-Vigil-Signature: t=<unix s>,v1=<hex HMAC-SHA256 of "<t>.<body>">` ' +
          "keyed by the secret in this answer (shown once). A delivery is retried with exponential backoff on " +
          "network errors, 5xx, 408 and 429, and dead-lettered after `api.webhooks.maxAttempts`.",
        tags: ["webhooks"],
        body: z.object({
          url: z.string().url(),
          watchlists: z.array(z.string().min(1)).optional(),
          description: z.string().max(500).optional(),
        }),
        response: { 201: WebhookOut.extend({ secret: z.string() }), ...errors },
      },
    },
    async (request, reply) => {
      audit(request, null, defined({ url: request.body.url, watchlists: request.body.watchlists }));
      const w = await hooks().create(request.body);
      request.auditInfo!.target = w.id;
      return reply.code(201).send(w);
    },
  );

  app.delete(
    "/v1/webhooks/:id",
    {
      config: { role: "admin", audit: "webhook.remove" },
      schema: {
        summary: "Unsubscribe a webhook (its delivery log goes with it)",
        tags: ["webhooks"],
        params: z.object({ id: z.string().min(1) }),
        response: { 204: z.undefined(), ...errors },
      },
    },
    async (request, reply) => {
      audit(request, request.params.id);
      await hooks().remove(request.params.id);
      return reply.code(204).send();
    },
  );

  app.get(
    "/v1/webhooks/:id/deliveries",
    {
      config: { role: "admin" },
      schema: {
        summary: "The webhook's delivery log, newest first; state=dead lists the dead letters",
        tags: ["webhooks"],
        params: z.object({ id: z.string().min(1) }),
        querystring: z.object({
          state: z.enum(["pending", "delivered", "dead"]).optional(),
          limit: Limit,
          cursor: Cursor.optional(),
        }),
        response: {
          200: z.object({ items: z.array(Delivery), nextCursor: z.string().nullable() }),
          ...errors,
        },
      },
    },
    async (request) => {
      const page = await hooks().deliveries(request.params.id, request.query);
      return { items: page.items.map(({ payload: _p, ...d }) => d), nextCursor: page.nextCursor };
    },
  );

  app.post(
    "/v1/webhooks/:id/deliveries/:deliveryId/retry",
    {
      config: { role: "admin", audit: "webhook.retry" },
      schema: {
        summary: "Try a dead delivery again",
        tags: ["webhooks"],
        params: z.object({ id: z.string().min(1), deliveryId: z.string().min(1) }),
        response: { 200: Delivery, ...errors },
      },
    },
    async (request) => {
      audit(request, request.params.deliveryId);
      const { payload: _p, ...d } = await hooks().retry(request.params.deliveryId);
      return d;
    },
  );
}
