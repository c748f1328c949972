import type { StateStore } from "../../lib/store/state-store.ts";
import type { ExportJobs } from "../../lib/export/export-jobs.ts";
import type { Embedder } from "../../lib/vision/inference/embedder.ts";
import type { FrameAnalyzer } from "../../lib/vision/inference/face-analyzer.ts";
import type { clippedRecords } from "../../lib/config/index.ts";
import type { ClipStore } from "../../lib/store/clip-store.ts";
import type {
  FastifyBaseLogger,
  FastifyInstance,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import type { z } from "zod";
import type { KeyService } from "../../lib/api/keys.ts";
import type { Config } from "../../lib/config/index.ts";
import type { HistoryService } from "../../lib/history/service.ts";
import type { UnknownService } from "../../lib/identities/service.ts";
import type { AlertStore } from "../../lib/store/alert-store.ts";
import type { AuditActor, AuditStore } from "../../lib/store/audit-store.ts";
import type { KeyStore, Role } from "../../lib/store/key-store.ts";
import type { SightingStore } from "../../lib/store/sighting-store.ts";
import type { IdentityStore } from "../../lib/store/identity-store.ts";
import type { WatchlistStore } from "../../lib/store/watchlist-store.ts";
import type { WebhookStore } from "../../lib/store/webhook-store.ts";
import type { Metrics } from "../../lib/telemetry/metrics.ts";
import type { WatchlistChanges } from "../../lib/watchlist/changes.ts";
import type { PhotoEmbedder } from "../../lib/watchlist/photo.ts";
import type { WatchlistService } from "../../lib/watchlist/service.ts";
import type { LiveFeed } from "./live.ts";
import type { UploadLimits } from "./upload.ts";
import type { WebhookDispatcher } from "./webhooks.ts";

export type ZodApp = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  ZodTypeProvider
>;

/** Who is calling: the API key that authenticated the request. */
export interface Principal extends AuditActor {
  keyId: string;
  role: Role;
}

declare module "fastify" {
  interface FastifyContextConfig {
    /** Least role that may call the route; absent: public (health, metrics, the OpenAPI document). */
    role?: Role;
    /** Audit-log action: every call of the route is recorded, whatever its outcome. */
    audit?: string;
    /** Fields of a multipart body, for the OpenAPI document (the route reads the stream itself). */
    multipart?: z.ZodType;
  }
  interface FastifyRequest {
    principal?: Principal;
    /** What the audit entry says about the call: set by the handler as soon as it knows. */
    auditInfo?: { target?: string | null; summary?: Record<string, unknown> };
  }
}

export interface ApiDeps {
  config: Config;
  store: WatchlistStore & SightingStore & AlertStore & StateStore & { unknowns: IdentityStore };
  apiStore: KeyStore & AuditStore & WebhookStore;
  photos: PhotoEmbedder;
  thresholdFor: (modelId: string) => number;
  /** Where watchlist changes are announced (the bus in scale-out); the embedded stores notice by themselves. */
  changes?: WatchlistChanges;
  feed: LiveFeed;
  metrics: Metrics;
  /** /readyz: every check must pass. */
  readiness?: Record<string, () => boolean | Promise<boolean>>;
  webhooks?: WebhookDispatcher;
  logger?: FastifyBaseLogger;
  clock?: () => number;
  /** Where the ingest processes store clips (the crop store); default: the config's. */
  clips?: ClipStore;
  /**
   * The face models, loaded on first use, for exports that mask faces; without them such an export is refused
   * (503) and `redact: none` still works.
   */
  videoModels?: () => Promise<{ analyzer: FrameAnalyzer; embedder: Embedder }>;
}

/** What the routes use: the dependencies and the use-case services built on them. */
export interface ApiContext extends ApiDeps {
  watchlist: WatchlistService;
  history: HistoryService;
  unknowns: UnknownService;
  keys: KeyService;
  limits: UploadLimits;
  clock: () => number;
  clips: ClipStore;
  exports: ExportJobs;
  /** Which cameras' alerts, and which cameras' sightings, get clips (their `clipUrl`). */
  clipped: ReturnType<typeof clippedRecords>;
}
