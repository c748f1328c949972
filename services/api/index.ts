import type { StateStore } from "../../lib/store/state-store.ts";
import type { FastifyBaseLogger } from "fastify";
import type { Bus } from "../../lib/bus/index.ts";
import { clippedRecords, type Config } from "../../lib/config/index.ts";
import { DeadLetterContract, Topics } from "../../lib/contracts/index.ts";
import type { AlertStore } from "../../lib/store/alert-store.ts";
import type { ApiStore } from "../../lib/store/api-store.ts";
import type { SightingStore } from "../../lib/store/sighting-store.ts";
import type { IdentityStore } from "../../lib/store/identity-store.ts";
import type { WatchlistStore } from "../../lib/store/watchlist-store.ts";
import type { Logger } from "../../lib/telemetry/log.ts";
import type { Metrics } from "../../lib/telemetry/metrics.ts";
import type { WatchlistChanges } from "../../lib/watchlist/changes.ts";
import type { PhotoEmbedder } from "../../lib/watchlist/photo.ts";
import { WatchlistService } from "../../lib/watchlist/service.ts";
import { auditRetention } from "../../lib/api/audit-retention.ts";
import { buildApi } from "./app.ts";
import type { ApiDeps, ZodApp } from "./context.ts";
import { LiveFeed } from "./live.ts";
import { MqttPublisher } from "./mqtt.ts";
import { WebhookDispatcher } from "./webhooks.ts";

export interface ApiServerDeps {
  config: Config;
  bus: Bus;
  store: WatchlistStore & SightingStore & AlertStore & StateStore & { unknowns: IdentityStore };
  apiStore: ApiStore;
  photos: PhotoEmbedder;
  /** The face models for exports that mask faces (loaded on first use); see ApiDeps. */
  videoModels?: ApiDeps["videoModels"];
  thresholdFor: (modelId: string) => number;
  changes?: WatchlistChanges;
  metrics: Metrics;
  log: Logger;
  /** The live feed's consumer group: every API process needs all of vigil.alerts, so one of its own. */
  group: string;
  readiness?: Record<string, () => boolean | Promise<boolean>>;
  /** Where to listen; default `api.host` / `api.port`. */
  listen?: { host: string; port: number };
}

export interface RunningApi {
  app: ZodApp;
  /** `http(s)://host:port` it listens on. */
  url: string;
  feed: LiveFeed;
  webhooks: WebhookDispatcher;
  mqtt: MqttPublisher | undefined;
  stop(): Promise<void>;
}

/**
 * The API's composition root: its bus consumer (alerts stored and streamed, camera states), alert delivery
 * (webhooks, MQTT) and the HTTP server, on the stores and bus it is given — the embedded run's own, or a
 * service's (`vigil serve api`).
 */
export async function startApi(deps: ApiServerDeps): Promise<RunningApi> {
  const { config, bus, log } = deps;
  const feed = new LiveFeed({
    bus,
    store: deps.store,
    group: deps.group,
    replay: config.api.sse.replay,
    snapshots: config.api.snapshots,
    sinkMaxAgeMs: 15 * 60_000,
    log,
  });
  const recorded = clippedRecords(config).alerts;
  // Payloads name the enrolled face each alert matched (`personCropUrl`), looked up as the alert routes do.
  const watchlist = new WatchlistService({ store: deps.store, photos: deps.photos });
  const webhooks = new WebhookDispatcher(deps.apiStore, config.api.webhooks, {
    log,
    publicUrl: config.api.mqtt.publicUrl,
    watchlist,
    recorded,
    onDead: async (d) => {
      await bus
        .publish(Topics.dlq, [
          {
            key: d.webhookId,
            value: DeadLetterContract.encode({
              sourceTopic: Topics.alerts,
              key: d.webhookId,
              reason: `webhook ${d.webhookId}: alert ${d.alertId} not delivered after ${d.attempts} attempt(s): ${d.lastError}`,
              ts: Date.now(),
              original: new TextEncoder().encode(d.payload),
            }),
          },
        ])
        .catch((err: Error) => log.warn({ err }, "webhooks: could not publish the dead letter"));
    },
  });
  const m = config.api.mqtt;
  const mqtt = m.url
    ? new MqttPublisher(
        {
          url: m.url,
          username: m.username,
          password: m.password,
          clientId: m.clientId,
          topicPrefix: m.topicPrefix,
          publicUrl: m.publicUrl,
          recorded,
          leaseMs: m.leaseMs,
          pollMs: m.pollMs,
          ackTimeoutMs: m.ackTimeoutMs,
          keepSentMs: 24 * 3_600_000,
        },
        deps.apiStore,
        log,
        watchlist,
      )
    : undefined;
  feed.addSink((alert) => webhooks.take(alert));
  if (mqtt) feed.addSink((alert) => mqtt.take(alert));

  const app = await buildApi({
    config,
    store: deps.store,
    apiStore: deps.apiStore,
    photos: deps.photos,
    ...(deps.videoModels ? { videoModels: deps.videoModels } : {}),
    thresholdFor: deps.thresholdFor,
    changes: deps.changes,
    feed,
    metrics: deps.metrics,
    webhooks,
    logger: log as unknown as FastifyBaseLogger,
    readiness: {
      bus: () => bus.healthy(),
      records: () => deps.apiStore.healthy(),
      ...(mqtt ? { mqtt: () => mqtt.connected } : {}),
      ...deps.readiness,
    },
  });
  await mqtt?.start();
  await webhooks.start();
  await feed.start();
  const listen = deps.listen ?? { host: config.api.host, port: config.api.port };
  let url: string;
  try {
    url = await app.listen(listen);
  } catch (err) {
    await feed.stop();
    await webhooks.stop();
    await mqtt?.stop();
    throw err;
  }
  log.info({ url, openapi: `${url}/openapi.json` }, "api: listening");
  const audit = auditRetention(deps.apiStore, {
    days: config.api.auditRetentionDays,
    everyS: config.store.retentionEveryS,
    onTrimmed: (t) =>
      t.removed > 0 &&
      log.info({ removed: t.removed, anchorSeq: t.anchor?.seq }, "api: audit entries past retention trimmed"),
    onError: (err) => log.warn({ err }, "api: audit retention pass failed; retried next period"),
  }).start(0);
  let stopping: Promise<void> | undefined;
  return {
    app,
    url,
    feed,
    webhooks,
    mqtt,
    stop: () =>
      (stopping ??= (async () => {
        // Streams are closed with the server (forceCloseConnections); then nothing new reaches the sinks.
        await audit.stop();
        await app.close();
        await feed.stop();
        await webhooks.stop();
        await mqtt?.stop();
      })()),
  };
}

/** `host:port`, `:port` or `port` as given to `--api`. */
export function parseListen(text: string, config: Config): { host: string; port: number } {
  const m = /^(?:(\[[^\]]+\]|[^:]*):)?(\d{1,5})$/.exec(text.trim());
  if (!m) throw new Error(`--api takes host:port (e.g. 127.0.0.1:8080), got ${JSON.stringify(text)}`);
  const port = Number(m[2]);
  if (port > 65535) throw new Error(`port ${port} is out of range`);
  return { host: m[1] ? m[1].replace(/^\[|\]$/g, "") : config.api.host, port };
}
