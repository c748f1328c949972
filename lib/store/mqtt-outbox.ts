/**
 * Alerts on their way to the MQTT broker. Every API replica sees every alert and offers it here; the first offer
 * of an alert wins (the rest find it logged), and one replica at a time publishes it under a lease, so the broker
 * gets each alert once however many replicas run, and again from another replica only if the one publishing
 * died before the broker acknowledged it. Subscribers drop that rare repeat by `alertId`, which every message
 * carries.
 */
export interface MqttMessage {
  /** The alert's id: one message per alert. */
  id: string;
  /** The JSON body for `<prefix>/alerts`. */
  payload: string;
  cameraId: string;
  /** The retained name for `<prefix>/<camera>/person`. */
  personName: string;
  state: "pending" | "sent";
  /** Publish attempts made (or started: counted at the claim). */
  attempts: number;
  lastError: string | null;
  createdTs: number;
  updatedTs: number;
  /** When a pending message may be tried again; null once sent. */
  nextAttemptTs: number | null;
}

export type NewMqttMessage = Pick<MqttMessage, "id" | "payload" | "cameraId" | "personName" | "createdTs">;

/** What an attempt leaves: sent, or pending again from `nextAttemptTs`. */
export type MqttOutcome = Pick<MqttMessage, "state" | "lastError" | "nextAttemptTs" | "updatedTs">;

export interface MqttOutboxStore {
  /** False when the alert is there already (another replica offered it first, or it was replayed). */
  addMqttMessage(message: NewMqttMessage): Promise<boolean>;
  /**
   * Up to `limit` pending messages due by `now` that no live lease holds, oldest first, each leased to
   * `claimant` until `now + leaseMs` with its attempt counted. Claimants calling at once never get the same one.
   */
  claimMqttMessages(claimant: string, now: number, leaseMs: number, limit: number): Promise<MqttMessage[]>;
  /** Records an attempt and releases the claim while `claimant` holds it (a send counts whoever holds it). */
  settleMqttMessage(id: string, claimant: string, outcome: MqttOutcome): Promise<boolean>;
  /** Forgets messages sent before `before` (kept a while so a replayed alert is still recognised); how many. */
  pruneMqttMessages(before: number): Promise<number>;
}
