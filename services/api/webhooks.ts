import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { AlertRecord } from "../../lib/store/alert-store.ts";
import { InvalidInputError, NotFoundError } from "../../lib/store/errors.ts";
import type { Page } from "../../lib/store/paging.ts";
import type { DeliveryQuery, Webhook, WebhookDelivery, WebhookStore } from "../../lib/store/webhook-store.ts";
import type { Logger } from "../../lib/telemetry/log.ts";
import { deliveredFaceUrls, type PhotoShown } from "./alert-links.ts";

export interface WebhookOptions {
  timeoutMs: number;
  maxAttempts: number;
  backoffMs: number;
  maxBackoffMs: number;
  maxQueue: number;
  /** HTTP requests in flight at once, across webhooks. */
  concurrency?: number;
}

/** `X-Vigil-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, as Stripe signs its events. */
export function signature(secret: string, timestampS: number, body: string): string {
  const mac = createHmac("sha256", secret).update(`${timestampS}.${body}`).digest("hex");
  return `t=${timestampS},v1=${mac}`;
}

/**
 * What a receiver does with the headers: recompute the HMAC over `<t>.<raw body>` with the shared secret, compare
 * in constant time, and refuse a timestamp older than a few minutes (a replayed request).
 */
export function verifySignature(
  secret: string,
  header: string,
  body: string,
  nowS = Math.floor(Date.now() / 1000),
  toleranceS = 300,
): boolean {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (!m) return false;
  const t = Number(m[1]);
  if (Math.abs(nowS - t) > toleranceS) return false;
  const expected = Buffer.from(signature(secret, t, body));
  const given = Buffer.from(header);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

/** Receivers answer these when trying again later can help; any other 4xx will not change by retrying. */
const RETRYABLE_4XX = new Set([408, 409, 425, 429]);

type Fetch = typeof fetch;

/**
 * Per-watchlist webhooks: each alert becomes one delivery per subscribed webhook, written to the delivery log
 * first, then POSTed signed, retried with exponential backoff and jitter, and dead-lettered after the last
 * attempt. Deliveries run on timers of their own: the bus consumer that hands over alerts never waits for a
 * receiver. Pending deliveries survive a restart (they are resumed from the log).
 */
export class WebhookDispatcher {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly inFlight = new Set<Promise<void>>();
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  private stopped = false;
  readonly stats = { delivered: 0, failedAttempts: 0, dead: 0 };

  constructor(
    private readonly store: WebhookStore,
    private readonly options: WebhookOptions,
    private readonly deps: {
      log?: Logger;
      clock?: () => number;
      fetch?: Fetch;
      random?: () => number;
      /** Told of each delivery given up on (the composition root publishes it on vigil.dlq). */
      onDead?: (delivery: WebhookDelivery) => void | Promise<void>;
      /** The base of the face URLs in payloads (`api.mqtt.publicUrl`); relative without it. */
      publicUrl?: string;
      /** Where the matched enrolled photo is looked up for `personCropUrl`; without it, null. */
      watchlist?: PhotoShown;
    } = {},
  ) {}

  private get now() {
    return (this.deps.clock ?? Date.now)();
  }

  // ---- subscriptions ----

  async create(request: {
    url: string;
    watchlists?: string[] | null;
    description?: string;
  }): Promise<Webhook> {
    let url: URL;
    try {
      url = new URL(request.url);
    } catch {
      throw new InvalidInputError(`not a URL: ${request.url}`);
    }
    if (url.protocol !== "https:" && url.protocol !== "http:")
      throw new InvalidInputError(`webhooks are http(s) URLs, got ${url.protocol}`);
    const webhook: Webhook = {
      id: `wh_${randomBytes(6).toString("hex")}`,
      url: url.toString(),
      secret: `whsec_${randomBytes(24).toString("base64url")}`,
      watchlists: request.watchlists?.length ? [...new Set(request.watchlists)] : null,
      description: request.description ?? "",
      createdTs: this.now,
    };
    await this.store.addWebhook(webhook);
    return webhook;
  }

  list(): Promise<Webhook[]> {
    return this.store.listWebhooks();
  }

  async remove(id: string): Promise<void> {
    if (!(await this.store.removeWebhook(id))) throw new NotFoundError(`no webhook ${id}`);
    for (const [deliveryId, timer] of this.timers)
      if (deliveryId.startsWith(`${id}:`)) {
        clearTimeout(timer);
        this.timers.delete(deliveryId);
      }
  }

  async deliveries(webhookId: string, query: DeliveryQuery): Promise<Page<WebhookDelivery>> {
    if (!(await this.store.getWebhook(webhookId))) throw new NotFoundError(`no webhook ${webhookId}`);
    return this.store.listDeliveries(webhookId, query);
  }

  /** A dead delivery tried again from the start (e.g. once the receiver is fixed). */
  async retry(deliveryId: string): Promise<WebhookDelivery> {
    const d = await this.store.getDelivery(deliveryId);
    if (!d) throw new NotFoundError(`no delivery ${deliveryId}`);
    if (d.state === "delivered") return d;
    const patch = {
      state: "pending" as const,
      attempts: 0,
      lastStatus: d.lastStatus,
      lastError: d.lastError,
      nextAttemptTs: this.now,
      updatedTs: this.now,
    };
    await this.store.updateDelivery(d.id, patch);
    const updated = { ...d, ...patch };
    this.schedule(updated);
    return updated;
  }

  // ---- delivery ----

  /** Resumes deliveries left pending by a previous process. */
  async start(): Promise<void> {
    for (const d of await this.store.pendingDeliveries()) this.schedule(d);
  }

  /** Lets attempts in flight finish (each bounded by the timeout); pending ones stay in the log for next time. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    for (const release of this.waiting.splice(0)) release();
    await Promise.allSettled([...this.inFlight]);
  }

  /** The alert sink: returns at once; the work happens on its own promise. */
  offer(alert: AlertRecord): void {
    if (this.stopped) return;
    const work = this.accept(alert).catch((err: Error) =>
      this.deps.log?.error({ err, alertId: alert.id }, "webhooks: could not queue the alert"),
    );
    this.track(work);
  }

  /** Resolves when nothing is scheduled or in flight (tests). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0 || this.timers.size > 0) {
      await Promise.allSettled([...this.inFlight]);
      if (this.timers.size > 0) await new Promise((r) => setTimeout(r, 10));
    }
  }

  private track(p: Promise<void>) {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  private async accept(alert: AlertRecord): Promise<void> {
    const hooks = (await this.store.listWebhooks()).filter(
      (w) => w.watchlists === null || w.watchlists.includes(alert.watchlistId),
    );
    if (hooks.length === 0) return;
    const faces = await deliveredFaceUrls(this.deps.watchlist, this.deps.publicUrl, alert, this.deps.log);
    const payload = JSON.stringify({ type: "alert", alert: { ...alert, ...faces } });
    for (const w of hooks) {
      const now = this.now;
      const delivery: WebhookDelivery = {
        id: `${w.id}:${alert.id}`,
        webhookId: w.id,
        alertId: alert.id,
        state: "pending",
        attempts: 0,
        lastStatus: null,
        lastError: null,
        createdTs: now,
        updatedTs: now,
        nextAttemptTs: now,
        payload,
      };
      // An alert replayed on the bus finds its delivery already logged and is not sent twice.
      if (await this.store.addDelivery(delivery)) this.schedule(delivery);
    }
    await this.shed();
  }

  /** Past maxQueue pending deliveries, the oldest are given up on: memory stays bounded, the pipeline unblocked. */
  private async shed() {
    if (this.timers.size <= this.options.maxQueue) return;
    const pending = await this.store.pendingDeliveries();
    for (const d of pending.slice(0, pending.length - this.options.maxQueue)) {
      const timer = this.timers.get(d.id);
      if (timer) clearTimeout(timer);
      this.timers.delete(d.id);
      await this.giveUp(d, d.lastStatus, `queue full (${this.options.maxQueue} pending deliveries)`);
    }
  }

  private schedule(d: WebhookDelivery) {
    if (this.stopped) return;
    const existing = this.timers.get(d.id);
    if (existing) clearTimeout(existing);
    const delay = Math.max(0, (d.nextAttemptTs ?? this.now) - this.now);
    const timer = setTimeout(() => {
      this.timers.delete(d.id);
      this.track(this.attempt(d.id));
    }, delay);
    this.timers.set(d.id, timer);
  }

  private async slot(): Promise<() => void> {
    const limit = this.options.concurrency ?? 8;
    while (this.active >= limit && !this.stopped) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    return () => {
      this.active--;
      this.waiting.shift()?.();
    };
  }

  private async attempt(id: string): Promise<void> {
    const release = await this.slot();
    try {
      if (this.stopped) return;
      const d = await this.store.getDelivery(id);
      if (!d || d.state !== "pending") return;
      const webhook = await this.store.getWebhook(d.webhookId);
      if (!webhook) return;
      const attempts = d.attempts + 1;
      let status: number | null = null;
      let error: string | null = null;
      try {
        const ts = Math.floor(this.now / 1000);
        const response = await (this.deps.fetch ?? fetch)(webhook.url, {
          method: "POST",
          body: d.payload,
          redirect: "manual",
          signal: AbortSignal.timeout(this.options.timeoutMs),
          headers: {
            "content-type": "application/json",
            "user-agent": "vigil-webhooks/1",
            "x-vigil-event": "alert",
            "x-vigil-delivery": d.id,
            "x-vigil-timestamp": String(ts),
            "x-vigil-signature": signature(webhook.secret, ts, d.payload),
          },
        });
        status = response.status;
        // Drain the body so the connection is reused; what it says does not matter.
        await response.arrayBuffer().catch(() => undefined);
        if (status >= 200 && status < 300) {
          await this.store.updateDelivery(d.id, {
            state: "delivered",
            attempts,
            lastStatus: status,
            lastError: null,
            nextAttemptTs: null,
            updatedTs: this.now,
          });
          this.stats.delivered++;
          return;
        }
        error = `receiver answered ${status}`;
      } catch (err) {
        error =
          (err as Error).name === "TimeoutError"
            ? `no answer within ${this.options.timeoutMs} ms`
            : (err as Error).message;
      }
      this.stats.failedAttempts++;
      const permanent = status !== null && status >= 400 && status < 500 && !RETRYABLE_4XX.has(status);
      if (permanent || attempts >= this.options.maxAttempts) {
        await this.giveUp(
          { ...d, attempts },
          status,
          permanent ? `${error} (not retried)` : (error ?? "failed"),
        );
        return;
      }
      const base = Math.min(this.options.maxBackoffMs, this.options.backoffMs * 2 ** (attempts - 1));
      // Half fixed, half random: receivers coming back from an outage are not hit by every sender at once.
      const delay = base / 2 + (this.deps.random ?? Math.random)() * (base / 2);
      const next = { ...d, attempts, nextAttemptTs: this.now + Math.round(delay) };
      await this.store.updateDelivery(d.id, {
        state: "pending",
        attempts,
        lastStatus: status,
        lastError: error,
        nextAttemptTs: next.nextAttemptTs,
        updatedTs: this.now,
      });
      this.schedule(next);
    } catch (err) {
      this.deps.log?.error({ err, delivery: id }, "webhooks: attempt failed to run");
    } finally {
      release();
    }
  }

  private async giveUp(d: WebhookDelivery, status: number | null, reason: string) {
    await this.store.updateDelivery(d.id, {
      state: "dead",
      attempts: d.attempts,
      lastStatus: status,
      lastError: reason,
      nextAttemptTs: null,
      updatedTs: this.now,
    });
    this.stats.dead++;
    this.deps.log?.warn({ delivery: d.id, reason }, "webhooks: delivery dead-lettered");
    await this.deps.onDead?.({ ...d, state: "dead", lastStatus: status, lastError: reason });
  }
}
