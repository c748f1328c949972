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
  /** Every delivery still pending, oldest first: what a restarted process resumes. */
  pendingDeliveries(): Promise<WebhookDelivery[]>;
}
