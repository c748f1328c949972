import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { hostname } from "node:os";
import type { AlertRecord } from "../../lib/store/alert-store.ts";
import { InvalidInputError, NotFoundError } from "../../lib/store/errors.ts";
import type { Page } from "../../lib/store/paging.ts";
import type { DeliveryQuery, Webhook, WebhookDelivery, WebhookStore } from "../../lib/store/webhook-store.ts";
import type { Logger } from "../../lib/telemetry/log.ts";
import { deliveredFaceUrls, type CameraRecorded, type PhotoShown } from "./alert-links.ts";

export interface WebhookOptions {
  timeoutMs: number;
  maxAttempts: number;
  backoffMs: number;
  maxBackoffMs: number;
  maxQueue: number;
  /** HTTP requests in flight at once, across webhooks (deliveries this replica holds claimed at once). */
  concurrency?: number;
  /**
   * How long a claimed delivery is this replica's alone. Renewed every third of it while the attempt runs; a
   * replica that dies stops renewing, and once it lapses another replica takes the delivery over. Default: 30 s, or
   * three request timeouts if that is longer.
   */
  leaseMs?: number;
  /** How often a replica looks for due deliveries no one holds (another's retries, a dead replica's). Default 1 s. */
  pollMs?: number;
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
 * receiver.
 *
 * Several API replicas may share the delivery log (PostgreSQL). Every replica sees every alert; the first insert
 * of a delivery wins and the others find it logged. Each attempt starts with a claim in the store (a lease to
 * one replica, `claimDeliveries`), renewed while the attempt runs and released with its outcome. Retries are due
 * rows in the log, claimed by whichever replica looks first; a replica that dies mid-attempt stops renewing, and
 * its deliveries are taken over once their leases lapse. A receiver may thus see the rare repeat (the dead
 * replica's request did arrive); every attempt of a delivery carries the same `Idempotency-Key` (and
 * `X-Vigil-Delivery`): `<webhook id>:<alert id>`, to drop it by, and `X-Vigil-Attempt`, its number.
 */
export class WebhookDispatcher {
  /** Wake-ups at the times retries this replica wrote fall due. */
  private readonly wakes = new Set<NodeJS.Timeout>();
  private readonly inFlight = new Set<Promise<void>>();
  /** Deliveries claimed by this replica, attempt in progress. */
  private readonly held = new Set<string>();
  private poller: NodeJS.Timeout | undefined;
  private renewer: NodeJS.Timeout | undefined;
  private passing = false;
  private passAgain = false;
  private stopped = false;
  /** This replica's name on its claims: host, process and a random part (a restarted process is another). */
  readonly claimant: string;
  readonly stats = { delivered: 0, failedAttempts: 0, dead: 0, lostClaims: 0 };

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
      /** Which cameras' alerts have clips (`clipUrl`); none without it. */
      recorded?: CameraRecorded;
      /** The name on this replica's claims; default host/pid/random. */
      claimant?: string;
    } = {},
  ) {
    this.claimant = deps.claimant ?? `${hostname()}/${process.pid}/${randomBytes(4).toString("hex")}`;
  }

  private get now() {
    return (this.deps.clock ?? Date.now)();
  }

  private get leaseMs() {
    return this.options.leaseMs ?? Math.max(30_000, 3 * this.options.timeoutMs);
  }

  private get concurrency() {
    return this.options.concurrency ?? 8;
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

  /** Removes the webhook and its delivery log (an attempt in flight finds its delivery gone and records nothing). */
  async remove(id: string): Promise<void> {
    if (!(await this.store.removeWebhook(id))) throw new NotFoundError(`no webhook ${id}`);
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
    this.kick();
    return { ...d, ...patch };
  }

  // ---- delivery ----

  /**
   * Starts claiming: at once (deliveries left pending by a previous process, or by a replica that died), then
   * every `pollMs`, and whenever an alert arrives or a retry this replica wrote falls due.
   */
  async start(): Promise<void> {
    if (this.stopped) return;
    this.poller ??= setInterval(() => this.kick(), this.options.pollMs ?? 1000);
    this.renewer ??= setInterval(() => this.track(this.renew()), Math.max(1, Math.floor(this.leaseMs / 3)));
    this.poller.unref();
    this.renewer.unref();
    this.kick();
  }

  /**
   * Lets attempts in flight finish (each bounded by the timeout) and record their outcome, which releases their
   * claims; pending ones stay in the log for this or another replica.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.poller);
    for (const t of this.wakes) clearTimeout(t);
    this.wakes.clear();
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    clearInterval(this.renewer);
  }

  /**
   * The alert sink: resolves once the alert's deliveries are in the log (attempts happen on their own), rejects
   * when they could not be written, so the caller can offer it again.
   */
  take(alert: AlertRecord): Promise<void> {
    if (this.stopped) return Promise.resolve();
    const work = this.accept(alert);
    this.track(work.catch(() => undefined));
    return work;
  }

  /** take() for a caller with nothing to do on failure but say so: returns at once. */
  offer(alert: AlertRecord): void {
    this.take(alert).catch((err: Error) =>
      this.deps.log?.error({ err, alertId: alert.id }, "webhooks: could not queue the alert"),
    );
  }

  /** Resolves when nothing this replica knows of is due soon or in flight (tests). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0 || this.wakes.size > 0) {
      await Promise.allSettled([...this.inFlight]);
      if (this.wakes.size > 0) await new Promise((r) => setTimeout(r, 10));
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
    const faces = await deliveredFaceUrls(
      this.deps.watchlist,
      this.deps.publicUrl,
      alert,
      this.deps.log,
      this.deps.recorded,
    );
    const payload = JSON.stringify({ type: "alert", alert: { ...alert, ...faces } });
    let added = false;
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
      // An alert replayed on the bus, or seen by every replica, finds its delivery already logged: one delivery.
      if (await this.store.addDelivery(delivery)) added = true;
    }
    if (!added) return;
    await this.shed();
    this.kick();
  }

  /** Past maxQueue pending deliveries, the oldest are given up on: the log stays bounded, the pipeline unblocked. */
  private async shed() {
    const excess = (await this.store.countPending()) - this.options.maxQueue;
    if (excess <= 0) return;
    const now = this.now;
    for (const d of (await this.store.pendingDeliveries()).slice(0, excess)) {
      // One being attempted right now (here or elsewhere) is left to its attempt.
      if (this.held.has(d.id)) continue;
      await this.store.updateDelivery(d.id, {
        state: "dead",
        attempts: d.attempts,
        lastStatus: d.lastStatus,
        lastError: `queue full (${this.options.maxQueue} pending deliveries)`,
        nextAttemptTs: null,
        updatedTs: now,
      });
      await this.dead({
        ...d,
        state: "dead",
        lastError: `queue full (${this.options.maxQueue} pending deliveries)`,
      });
    }
  }

  /** A claiming pass soon; one at a time, and another after it when asked meanwhile. */
  private kick() {
    if (this.stopped) return;
    if (this.passing) {
      this.passAgain = true;
      return;
    }
    this.passing = true;
    this.track(
      this.pass()
        .catch((err: Error) => this.deps.log?.warn({ err }, "webhooks: could not claim deliveries"))
        .finally(() => (this.passing = false)),
    );
  }

  /** Claims as many due deliveries as there are free slots, and starts their attempts. */
  private async pass(): Promise<void> {
    do {
      this.passAgain = false;
      const free = this.concurrency - this.held.size;
      // A finished attempt frees its slot and asks for another pass.
      if (free <= 0 || this.stopped) return;
      const claimed = await this.store.claimDeliveries(this.claimant, this.now, this.leaseMs, free);
      for (const d of claimed) {
        // Its lease lapsed under an attempt still running here (renewals failed): that attempt goes on, alone.
        if (this.held.has(d.id)) continue;
        this.held.add(d.id);
        this.track(this.attempt(d));
      }
      if (claimed.length === free) this.passAgain = true;
    } while (this.passAgain);
  }

  /** A pass at `ts`: when a retry this replica scheduled falls due (any replica's poll may claim it first). */
  private wakeAt(ts: number) {
    if (this.stopped) return;
    const timer = setTimeout(
      () => {
        this.wakes.delete(timer);
        this.kick();
      },
      // A millisecond late: a timer may fire in the millisecond before the one it was set for.
      Math.max(0, ts - this.now + 1),
    );
    this.wakes.add(timer);
  }

  /** Keeps this replica's claims while their attempts run; a claim found lost is counted and logged. */
  private async renew(): Promise<void> {
    if (this.held.size === 0) return;
    const ids = [...this.held];
    try {
      const kept = new Set(await this.store.renewClaims(this.claimant, ids, this.now + this.leaseMs));
      for (const id of ids)
        if (!kept.has(id) && this.held.has(id)) {
          this.stats.lostClaims++;
          this.deps.log?.warn({ delivery: id }, "webhooks: lease lost; another replica may attempt it too");
        }
    } catch (err) {
      this.deps.log?.warn({ err }, "webhooks: could not renew leases");
    }
  }

  /** One attempt of a delivery this replica has claimed (its `attempts` already counts it). */
  private async attempt(d: WebhookDelivery): Promise<void> {
    try {
      const webhook = await this.store.getWebhook(d.webhookId);
      if (!webhook) return;
      const attempts = d.attempts;
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
            // The same on every attempt, from any replica: what a receiver drops a repeat by.
            "x-vigil-delivery": d.id,
            "idempotency-key": d.id,
            "x-vigil-attempt": String(attempts),
            "x-vigil-timestamp": String(ts),
            "x-vigil-signature": signature(webhook.secret, ts, d.payload),
          },
        });
        status = response.status;
        // Drain the body so the connection is reused; what it says does not matter.
        await response.arrayBuffer().catch(() => undefined);
        if (status >= 200 && status < 300) {
          await this.store.settleDelivery(d.id, this.claimant, {
            state: "delivered",
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
        const reason = permanent ? `${error} (not retried)` : (error ?? "failed");
        const outcome = {
          state: "dead" as const,
          lastStatus: status,
          lastError: reason,
          nextAttemptTs: null,
        };
        if (await this.store.settleDelivery(d.id, this.claimant, { ...outcome, updatedTs: this.now }))
          await this.dead({ ...d, ...outcome, updatedTs: this.now });
        return;
      }
      const base = Math.min(this.options.maxBackoffMs, this.options.backoffMs * 2 ** (attempts - 1));
      // Half fixed, half random: receivers coming back from an outage are not hit by every sender at once.
      const delay = base / 2 + (this.deps.random ?? Math.random)() * (base / 2);
      const next = this.now + Math.round(delay);
      const kept = await this.store.settleDelivery(d.id, this.claimant, {
        state: "pending",
        lastStatus: status,
        lastError: error,
        nextAttemptTs: next,
        updatedTs: this.now,
      });
      if (kept) this.wakeAt(next);
    } catch (err) {
      // The claim stays until its lease lapses; then this or another replica tries again.
      this.deps.log?.error({ err, delivery: d.id }, "webhooks: attempt failed to run");
    } finally {
      this.held.delete(d.id);
      this.kick();
    }
  }

  private async dead(d: WebhookDelivery) {
    this.stats.dead++;
    this.deps.log?.warn({ delivery: d.id, reason: d.lastError }, "webhooks: delivery dead-lettered");
    await this.deps.onDead?.(d);
  }
}
