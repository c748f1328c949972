import type { Config } from "../config/index.ts";
import type { AlertStore } from "../store/alert-store.ts";
import type { ClipStore } from "../store/clip-store.ts";
import type { IdentityStore } from "../store/identity-store.ts";
import type { SightingStore } from "../store/sighting-store.ts";
import { PeriodicTask } from "./periodic.ts";

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
  /** Clip objects deleted with the records they were cut for (videos and their infos). */
  clips: number;
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
  /** Where clips are kept (the crop store): each goes with its record's retention period. */
  clips?: Pick<ClipStore, "purgeBefore">;
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
 * every `everyS` inside a long-running process, so a deployment that runs for months keeps only its retention
 * periods' worth rather than what it held at start. Several processes may run one each on the same store:
 * purging is idempotent.
 */
export class RetentionScheduler extends PeriodicTask<RetentionResult> {
  constructor(store: RetentionStore, options: RetentionOptions) {
    super(() => purge(store, options), {
      everyS: options.everyS,
      onDone: options.onPurged,
      onError: options.onError,
    });
  }
}

async function purge(store: RetentionStore, options: RetentionOptions): Promise<RetentionResult> {
  const now = (options.now ?? Date.now)();
  const sightingsBefore = now - options.retentionDays * DAY_MS;
  const alertsBefore = now - options.alertRetentionDays * DAY_MS;
  const sightings = await store.purgeBefore(sightingsBefore);
  const alerts = await store.purgeAlertsBefore(alertsBefore);
  const clips = options.clips
    ? (await options.clips.purgeBefore("sightings", sightingsBefore)) +
      (await options.clips.purgeBefore("alerts", alertsBefore))
    : 0;
  const result: RetentionResult = { sightingsBefore, alertsBefore, sightings, alerts, unknowns: 0, clips };
  if (!store.unknowns) return result;
  // An identity's period runs from when it was last seen, however long ago it was first seen.
  const unknownsBefore = now - (options.unknownRetentionDays ?? options.retentionDays) * DAY_MS;
  const unknowns = await store.unknowns.purgeUnknownsBefore(unknownsBefore);
  return { ...result, unknownsBefore, unknowns };
}
