import type { AuditStore, AuditTrim } from "../store/audit-store.ts";
import { PeriodicTask } from "../runtime/periodic.ts";

const DAY_MS = 86_400_000;

export interface AuditRetentionOptions {
  days: number;
  everyS: number;
  now?: () => number;
  onTrimmed?: (trim: AuditTrim) => void;
  onError?: (err: unknown) => void;
}

/**
 * Trims audit entries older than `days` on a schedule. The store writes each trim into the log (what was removed
 * and the anchor it left), so the kept chain records that it was shortened, by whom, and where it now starts.
 */
export function auditRetention(store: AuditStore, options: AuditRetentionOptions): PeriodicTask<AuditTrim> {
  const now = options.now ?? Date.now;
  return new PeriodicTask(
    async () => {
      const ts = now();
      return store.trimAuditBefore(ts - options.days * DAY_MS, {
        ts,
        actor: { keyId: null, name: "system:retention", role: null },
        summary: { olderThanDays: options.days },
      });
    },
    { everyS: options.everyS, onDone: options.onTrimmed, onError: options.onError },
  );
}
