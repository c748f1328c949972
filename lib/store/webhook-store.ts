import type { Page } from "./paging.ts";

/** A receiver of alerts: signed POSTs of every alert of its watchlists. */
export interface Webhook {
  id: string;
  url: string;
  /** HMAC-SHA256 key of the signature; kept as given, since signing needs it. Shown once at creation. */
  secret: string;
  /** Only alerts of these watchlists; null: every watchlist. */
  watchlists: string[] | null;
  description: string;
  createdTs: number;
}

export type DeliveryState = "pending" | "delivered" | "dead";

/** One alert to one webhook, through its attempts: the delivery log. */
export interface WebhookDelivery {
  /** `<webhook id>:<alert id>`: an alert replayed on the bus is delivered once. */
  id: string;
  webhookId: string;
  alertId: string;
  state: DeliveryState;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  createdTs: number;
  updatedTs: number;
  /** When the next attempt is due; null once delivered or dead. */
  nextAttemptTs: number | null;
  /** The JSON body, signed anew at every attempt (the timestamp changes). */
  payload: string;
}

/** What an attempt leaves in the log: delivered, dead, or pending again until `nextAttemptTs`. */
export type DeliveryOutcome = Pick<
  WebhookDelivery,
  "state" | "lastStatus" | "lastError" | "nextAttemptTs" | "updatedTs"
>;

export interface DeliveryQuery {
  limit: number;
  cursor?: string;
  state?: DeliveryState;
}

export interface WebhookStore {
  addWebhook(webhook: Webhook): Promise<void>;
  getWebhook(id: string): Promise<Webhook | undefined>;
  listWebhooks(): Promise<Webhook[]>;
  /** Removes the webhook and its delivery log; false when there was none. */
  removeWebhook(id: string): Promise<boolean>;
  /** False when a delivery with this id exists already (a replayed alert). */
  addDelivery(delivery: WebhookDelivery): Promise<boolean>;
  updateDelivery(
    id: string,
    patch: Pick<
      WebhookDelivery,
      "state" | "attempts" | "lastStatus" | "lastError" | "nextAttemptTs" | "updatedTs"
    >,
  ): Promise<void>;
  getDelivery(id: string): Promise<WebhookDelivery | undefined>;
  /** Newest first. */
  listDeliveries(webhookId: string, query: DeliveryQuery): Promise<Page<WebhookDelivery>>;
  /** Every delivery still pending, oldest first. */
  pendingDeliveries(): Promise<WebhookDelivery[]>;
  /** How many deliveries are pending (the dispatcher's bound on its backlog). */
  countPending(): Promise<number>;

  // ---- claims: several API replicas share one delivery log, each delivery is attempted by one at a time ----

  /**
   * Up to `limit` pending deliveries due by `now` that no live lease holds (never claimed, released after an
   * attempt, or leased by a claimant that stopped renewing), oldest due first, each now leased to `claimant` until
   * `now + leaseMs` with its `attempts` counted up: the attempt about to be made, counted before it is made, so an
   * attempt whose claimant died counts too. Claimants calling at once never get the same delivery.
   */
  claimDeliveries(claimant: string, now: number, leaseMs: number, limit: number): Promise<WebhookDelivery[]>;
  /** Extends to `leaseUntil` the leases `claimant` still holds among `ids`; returns those (the rest were lost). */
  renewClaims(claimant: string, ids: readonly string[], leaseUntil: number): Promise<string[]>;
  /**
   * Records an attempt's outcome and releases the claim, if the delivery is still pending and `claimant` still
   * holds it; a success is recorded whoever holds it (the receiver has the alert either way). False when nothing
   * was written: the lease was lost and another claimant's attempt decides, or the delivery is gone.
   */
  settleDelivery(id: string, claimant: string, outcome: DeliveryOutcome): Promise<boolean>;
}
