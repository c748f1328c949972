import type { Config } from "../config/index.ts";
import type { AlertStore } from "../store/alert-store.ts";
import type { IdentityStore } from "../store/identity-store.ts";
import type { SightingStore } from "../store/sighting-store.ts";

const DAY_MS = 86_400_000;

/**
 * What retention needs of a store: both stores delete a record's crop with the record. A store with unknown
 * identities also forgets those not seen within their own period.
 */
export type RetentionStore = Pick<SightingStore, "purgeBefore"> &
  Pick<AlertStore, "purgeAlertsBefore"> & { unknowns?: Pick<IdentityStore, "purgeUnknownsBefore"> };

export interface RetentionResult {
  /** The cut-offs used (ms since the epoch): records older than these were deleted. */
  sightingsBefore: number;
  alertsBefore: number;
  /** Unknown identities last seen before this were deleted (absent: the store keeps none). */
  unknownsBefore?: number;
  sightings: number;
  alerts: number;
  unknowns: number;
}

export interface RetentionOptions {
  retentionDays: number;
  alertRetentionDays: number;
  /** Unknown identities not seen for this long are deleted; default: `retentionDays`. */
  unknownRetentionDays?: number;
  everyS: number;
  /** The clock the cut-offs are taken from; tests move it instead of waiting days. */
  now?: () => number;
  /** Told of every pass, including those that deleted nothing. */
  onPurged?: (result: RetentionResult) => void;
  /** A failed pass (store away) is reported and retried at the next period, never fatal to the process. */
  onError?: (err: unknown) => void;
}

export const retentionOptions = (
  config: Pick<Config, "store">,
): Pick<RetentionOptions, "retentionDays" | "alertRetentionDays" | "unknownRetentionDays" | "everyS"> => ({
  retentionDays: config.store.retentionDays,
  alertRetentionDays: config.store.alertRetentionDays,
  unknownRetentionDays: config.store.unknownRetentionDays,
  everyS: config.store.retentionEveryS,
});

/**
 * Deletes expired sightings and alerts (with their crops), and unknown identities not seen within their period,
 * every `everyS` inside a long-running process, so a
 * deployment that runs for months keeps only its retention periods' worth rather than what it held at start.
 * Several processes may run one each on the same store: purging is idempotent.
 */
export class RetentionScheduler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<RetentionResult> | undefined;
  private stopped = false;
  private readonly now: () => number;

  constructor(
    private readonly store: RetentionStore,
    private readonly options: RetentionOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** One pass now. A pass already in flight is joined rather than doubled. */
  tick(): Promise<RetentionResult> {
    this.running ??= this.purge().finally(() => (this.running = undefined));
    return this.running;
  }

  /** Passes every `everyS`, the first after `firstAfterMs` (default: one period). */
  start(firstAfterMs = this.options.everyS * 1000): this {
    this.stopped = false;
    this.schedule(firstAfterMs);
    return this;
  }

  /** No further pass; waits for one in flight, so the store can be closed after. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => {});
  }

  private schedule(afterMs: number) {
    if (this.stopped) return;
    // A timeout chain, not an interval: a slow pass (millions of expired points) never overlaps the next.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.tick()
        .catch((err: unknown) => this.options.onError?.(err))
        .finally(() => this.schedule(this.options.everyS * 1000));
    }, afterMs);
    // Retention alone must not keep a finished process alive.
    this.timer.unref();
  }

  private async purge(): Promise<RetentionResult> {
    const now = this.now();
    const sightingsBefore = now - this.options.retentionDays * DAY_MS;
    const alertsBefore = now - this.options.alertRetentionDays * DAY_MS;
    const sightings = await this.store.purgeBefore(sightingsBefore);
    const alerts = await this.store.purgeAlertsBefore(alertsBefore);
    let result: RetentionResult = { sightingsBefore, alertsBefore, sightings, alerts, unknowns: 0 };
    if (this.store.unknowns) {
      // An identity's period runs from when it was last seen, however long ago it was first seen.
      const unknownsBefore = now - (this.options.unknownRetentionDays ?? this.options.retentionDays) * DAY_MS;
      const unknowns = await this.store.unknowns.purgeUnknownsBefore(unknownsBefore);
      result = { ...result, unknownsBefore, unknowns };
    }
    this.options.onPurged?.(result);
    return result;
  }
}
