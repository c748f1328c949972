import type { ApiContext, ZodApp } from "../context.ts";

/** Unauthenticated: probes, Prometheus and the API's own description. */
export function systemRoutes(app: ZodApp, ctx: ApiContext) {
  app.get("/healthz", { schema: { hide: true } }, async (_request, reply) =>
    reply.type("text/plain").send("ok\n"),
  );
  app.get("/readyz", { schema: { hide: true } }, async (_request, reply) => {
    const checks: Record<string, boolean> = {};
    for (const [name, check] of Object.entries(ctx.readiness ?? {})) {
      try {
        checks[name] = await check();
      } catch {
        checks[name] = false;
      }
    }
    const ready = Object.values(checks).every(Boolean);
    return reply.code(ready ? 200 : 503).send({ ready, checks });
  });
  app.get("/metrics", { schema: { hide: true } }, async (_request, reply) =>
    reply.type(ctx.metrics.contentType).send(await ctx.metrics.text()),
  );
  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
}
