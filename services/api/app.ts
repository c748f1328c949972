import cors from "@fastify/cors";
import multipart from "@fastify/multipart";
import swagger from "@fastify/swagger";
import Fastify, { LogController, type FastifyError, type FastifyReply, type FastifyRequest } from "fastify";
import {
  hasZodFastifySchemaValidationErrors,
  isResponseSerializationError,
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
} from "fastify-type-provider-zod";
import { readFileSync } from "node:fs";
import client from "prom-client";
import { ZodError } from "zod";
import { clippedRecords } from "../../lib/config/index.ts";
import { KeyService } from "../../lib/api/keys.ts";
import { HistoryService } from "../../lib/history/service.ts";
import { UnknownService } from "../../lib/identities/service.ts";
import { InvalidInputError, NotFoundError } from "../../lib/store/errors.ts";
import { ClipStore } from "../../lib/store/clip-store.ts";
import { openCropStore } from "../../lib/store/open-store.ts";
import { clipRoutes } from "./routes/clips.ts";
import { exportRoutes } from "./routes/exports.ts";
import { followRoutes } from "./routes/follows.ts";
import { ExportJobs } from "../../lib/export/export-jobs.ts";
import { roleRank } from "../../lib/store/key-store.ts";
import { WatchlistService } from "../../lib/watchlist/service.ts";
import type { ApiContext, ApiDeps, ZodApp } from "./context.ts";
import { RateLimiter } from "./rate-limit.ts";
import { alertRoutes } from "./routes/alerts.ts";
import { adminRoutes } from "./routes/admin.ts";
import { consoleRoutes } from "./console.ts";
import { cameraRoutes } from "./routes/cameras.ts";
import { historyRoutes } from "./routes/history.ts";
import { systemRoutes } from "./routes/system.ts";
import { unknownRoutes } from "./routes/unknowns.ts";
import { watchlistRoutes } from "./routes/watchlist.ts";
import { UploadError } from "./upload.ts";

const VERSION = "1.0.0";

interface ErrorReply {
  error: string;
  message: string;
  issues?: { path: string; message: string }[];
}

const issuesOf = (e: ZodError) =>
  e.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message }));

/** One mapping from failures to HTTP, so every route answers alike. */
function errorReply(err: unknown): { status: number; body: ErrorReply } {
  if (err instanceof UploadError)
    return {
      status: err.statusCode,
      body: {
        error: {
          400: "invalid_request",
          413: "too_large",
          415: "unsupported_media_type",
          422: "unprocessable",
        }[err.statusCode],
        message: err.message,
      },
    };
  if (err instanceof NotFoundError)
    return { status: 404, body: { error: "not_found", message: err.message } };
  if (err instanceof InvalidInputError)
    return { status: 400, body: { error: "invalid_request", message: err.message } };
  if (err instanceof ZodError)
    return {
      status: 400,
      body: {
        error: "invalid_request",
        message: "the request does not match its schema",
        issues: issuesOf(err),
      },
    };
  const e = err as FastifyError;
  if (hasZodFastifySchemaValidationErrors(e))
    return {
      status: 400,
      body: {
        error: "invalid_request",
        message: `${e.validationContext ?? "request"} does not match its schema`,
        issues: e.validation.map((v) => ({
          path: [e.validationContext, ...String(v.instancePath).split("/").filter(Boolean)]
            .filter(Boolean)
            .join("."),
          message: v.message ?? "invalid",
        })),
      },
    };
  if (e.code === "FST_INVALID_MULTIPART_CONTENT_TYPE")
    return {
      status: 415,
      body: { error: "unsupported_media_type", message: "expected multipart/form-data" },
    };
  if (e.code === "FST_REQ_FILE_TOO_LARGE" || e.code === "FST_FILES_LIMIT" || e.code === "FST_PARTS_LIMIT")
    return { status: 413, body: { error: "too_large", message: e.message } };
  if (typeof e.statusCode === "number" && e.statusCode >= 400 && e.statusCode < 500)
    return { status: e.statusCode, body: { error: e.code ?? "bad_request", message: e.message } };
  return { status: 500, body: { error: "internal", message: "the server failed; see its log" } };
}

const bearer = (request: FastifyRequest): string | undefined => {
  const auth = request.headers.authorization;
  if (auth) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m) return m[1];
  }
  const header = request.headers["x-api-key"];
  return typeof header === "string" && header ? header : undefined;
};

function refuse(reply: FastifyReply, status: number, error: string, message: string) {
  return reply.code(status).type("application/json").send(JSON.stringify({ error, message }));
}

/**
 * The operator API as a fastify instance (not yet listening: `inject` it in tests, `listen` it in a process).
 * HTTP only: every route calls the use-case services the CLI calls.
 */
export async function buildApi(deps: ApiDeps): Promise<ZodApp> {
  const { config } = deps;
  const api = config.api;
  const clock = deps.clock ?? Date.now;
  const tls = api.tls.cert && api.tls.key;
  const options = {
    ...(deps.logger ? { loggerInstance: deps.logger } : { logger: false }),
    // Requests are logged by the onResponse hook below, at debug: fastify's two info lines each are noise here.
    logController: new LogController({ disableRequestLogging: true }),
    // Event streams never go idle: closing the server must end them, not wait for them.
    forceCloseConnections: true,
    trustProxy: api.trustProxy,
    // Ids carry ':' and may be long; the default 100 characters is too short for some.
    routerOptions: { maxParamLength: 1000 },
    ...(tls ? { https: { cert: readFileSync(api.tls.cert!), key: readFileSync(api.tls.key!) } } : {}),
  };
  const app = Fastify(options as Parameters<typeof Fastify>[0]).withTypeProvider() as unknown as ZodApp;
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  const watchlist = new WatchlistService({
    store: deps.store,
    photos: deps.photos,
    changes: deps.changes,
    clock,
  });
  const clips = deps.clips ?? new ClipStore(openCropStore(config));
  const exports = new ExportJobs(clips.crops, async () => {
    const vision = deps.videoModels ? await deps.videoModels() : undefined;
    return {
      store: deps.store,
      clips,
      ...(vision ? { vision } : {}),
      threshold: vision ? deps.thresholdFor(vision.embedder.modelId) : 1,
      maxSide: config.detect.maxSide,
    };
  });
  const ctx: ApiContext = {
    ...deps,
    clock,
    watchlist,
    // Promotion enrols through the same watchlist service as any enrolment.
    unknowns: new UnknownService({ store: deps.store.unknowns, sightings: deps.store, watchlist }),
    history: new HistoryService({
      store: deps.store,
      photos: deps.photos,
      thresholdFor: deps.thresholdFor,
      clock,
    }),
    keys: new KeyService(deps.apiStore, deps.apiStore, clock),
    limits: api.upload,
    clips,
    exports,
    clipped: clippedRecords(config),
  };
  app.addHook("onClose", async () => {
    // Exports running here stop at their next frame and are let go (written to the clip store, so before it
    // closes), for another replica to take over.
    await ctx.exports.close();
    // The clip store this API opened is its to close; one it was given is the caller's.
    if (!deps.clips) ctx.clips.crops.close();
  });

  // ---- metrics ----
  const registers = [deps.metrics.registry];
  const requests = new client.Counter({
    name: "vigil_api_requests_total",
    help: "API requests by route and status",
    labelNames: ["method", "route", "status"],
    registers,
  });
  const seconds = new client.Histogram({
    name: "vigil_api_request_seconds",
    help: "API request latency by route",
    labelNames: ["method", "route"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const feed = deps.feed;
  new client.Gauge({
    name: "vigil_api_stream_clients",
    help: "clients connected to the live alert stream",
    registers,
    collect() {
      this.set(feed.listenerCount);
    },
  });

  await app.register(swagger, {
    openapi: {
      openapi: "3.0.3",
      info: {
        title: "Vigil operator API",
        version: VERSION,
        description:
          "Cameras, watchlists, alerts (with a live Server-Sent Events stream), history search by photo and timelines. " +
          "Every route but /healthz, /readyz, /metrics and /openapi.json needs an API key (`Authorization: Bearer <key>` " +
          "or `X-API-Key`); each route names the least role it needs (viewer < operator < admin).",
      },
      components: {
        securitySchemes: {
          bearer: { type: "http", scheme: "bearer", description: "an API key from `vigil keys create`" },
          apiKeyHeader: { type: "apiKey", in: "header", name: "X-API-Key" },
        },
      },
    },
    transform: (document) => {
      const route = document.route;
      const cfg = route.config as { role?: string; multipart?: unknown } | undefined;
      const schema = { ...(document.schema ?? {}) } as Record<string, unknown>;
      if (cfg?.multipart) {
        schema.body = cfg.multipart;
        schema.consumes = ["multipart/form-data"];
      }
      if (cfg?.role) {
        schema.security = [{ bearer: [] }, { apiKeyHeader: [] }];
        schema.description =
          `${(schema.description as string | undefined) ?? ""}\n\nRole: **${cfg.role}** or above.`.trim();
      }
      return jsonSchemaTransform({ ...document, schema });
    },
    transformObject: jsonSchemaTransformObject,
  });
  await app.register(multipart, { limits: { fileSize: api.upload.maxBytes, files: api.upload.maxFiles } });
  // CORS is off unless origins are configured: browsers then refuse cross-origin calls.
  if (api.corsOrigins.length > 0)
    await app.register(cors, {
      origin: api.corsOrigins.includes("*") ? true : api.corsOrigins,
      methods: ["GET", "POST", "PUT", "PATCH", "DELETE"],
      allowedHeaders: ["authorization", "x-api-key", "content-type", "last-event-id"],
      maxAge: 600,
    });

  // ---- authentication, roles, rate limits ----
  const limiter = new RateLimiter(api.rateLimit, clock);
  const touched = new Map<string, number>();
  app.addHook("onRequest", async (request, reply) => {
    const role = request.routeOptions.config.role;
    if (!role) return;
    const token = bearer(request);
    if (!token) {
      reply.header("www-authenticate", 'Bearer realm="vigil"');
      return refuse(reply, 401, "unauthorized", "an API key is needed: Authorization: Bearer <key>");
    }
    const auth = await ctx.keys.authenticate(token);
    if (!auth.ok) {
      reply.header("www-authenticate", 'Bearer realm="vigil", error="invalid_token"');
      return refuse(
        reply,
        401,
        "unauthorized",
        auth.reason === "revoked" ? "this API key has been revoked" : "not a valid API key",
      );
    }
    const key = auth.key;
    request.principal = { keyId: key.id, name: key.name, role: key.role };
    const limit = limiter.take(key.id, key.rateLimitPerMinute ?? undefined);
    if (!limit.ok) {
      reply.header("retry-after", String(limit.retryAfterS));
      return refuse(
        reply,
        429,
        "rate_limited",
        `too many requests for this key; retry in ${limit.retryAfterS} s`,
      );
    }
    const now = clock();
    // "Last used" to the minute is enough, and spares the store a write per request.
    if ((touched.get(key.id) ?? 0) < now - 60_000) {
      touched.set(key.id, now);
      await ctx.apiStore.touchKey(key.id, now);
    }
    if (roleRank(key.role) < roleRank(role))
      return refuse(
        reply,
        403,
        "forbidden",
        `this needs the ${role} role; key ${key.id} (${key.name}) is ${key.role === "admin" ? "an" : "a"} ${key.role}`,
      );
  });

  // ---- audit ----
  app.addHook("onSend", async (request, reply, payload) => {
    const action = request.routeOptions.config.audit;
    const status = reply.statusCode;
    const principal = request.principal;
    // Every call of an audited route, and every refusal of a right, by whom; never anonymous noise.
    if (!principal || (!action && status !== 403) || status === 429) return payload;
    await ctx.apiStore.append({
      ts: clock(),
      actor: { keyId: principal.keyId, name: principal.name, role: principal.role },
      action: action ?? `${request.method} ${request.routeOptions.url ?? request.url}`,
      target: request.auditInfo?.target ?? null,
      outcome: status < 400 ? "ok" : status === 403 ? "denied" : "failed",
      status,
      summary: request.auditInfo?.summary ?? {},
      ip: request.ip ?? null,
    });
    return payload;
  });

  app.addHook("onResponse", async (request, reply) => {
    const route = request.routeOptions.url ?? "unmatched";
    requests.inc({ method: request.method, route, status: String(reply.statusCode) });
    seconds.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    request.log.debug({ method: request.method, url: request.url, status: reply.statusCode }, "api request");
  });

  app.setErrorHandler((err, request, reply) => {
    if (isResponseSerializationError(err))
      request.log.error({ err, issues: err.cause.issues }, "api: bad response");
    const { status, body } = errorReply(err);
    if (status >= 500) request.log.error({ err }, "api: request failed");
    return reply.code(status).send(body);
  });
  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send({ error: "not_found", message: `no route ${request.method} ${request.url.split("?")[0]}` }),
  );

  systemRoutes(app, ctx);
  cameraRoutes(app, ctx);
  alertRoutes(app, ctx);
  historyRoutes(app, ctx);
  clipRoutes(app, ctx);
  exportRoutes(app, ctx);
  followRoutes(app, ctx);
  watchlistRoutes(app, ctx);
  unknownRoutes(app, ctx);
  adminRoutes(app, ctx);
  consoleRoutes(app, ctx);
  await app.ready();
  return app;
}
