import { audited } from "../../lib/api/audit.ts";
import type { Config } from "../../lib/config/index.ts";
import { isUnknownId } from "../../lib/identities/identity.ts";
import { openStore, type Store } from "../../lib/store/open-store.ts";
import type { SightingRecord } from "../../lib/store/sighting-store.ts";
import { Follows, nextCameras } from "../../lib/watchlist/follows.ts";
import { UsageError } from "../context.ts";

export interface FollowOptions {
  /** How long, e.g. `30m`, `2h` (default 1 h): the follow ends by itself, even if this command is killed. */
  for: string;
  pollMs: number;
  json?: boolean;
}

const DURATION = /^(\d+(?:\.\d+)?)(s|m|h)$/;
const iso = (ts: number) => new Date(ts).toISOString();

/** The person's sightings and alerts newer than `since`, oldest first. */
async function newSince(store: Store, id: string, since: number) {
  const sightings: SightingRecord[] = isUnknownId(id)
    ? (await store.browse({ unknownId: id, since, limit: 100 })).items.reverse()
    : await store.byPerson(id, { since });
  const alerts = isUnknownId(id)
    ? []
    : (await store.listAlerts({ personId: id, since, limit: 100 })).items.reverse();
  return { sightings, alerts };
}

/**
 * `vigil follow <id>`: marks the person (or unknown identity) followed, so every pass of theirs alerts whatever
 * the cool-down, and prints their alerts and sightings as they arrive on any camera, each with where the camera
 * map says they may appear next. Ends (and unfollows) on Ctrl-C, on `signal`, or when `--for` is up. An unknown
 * identity matches nobody on the watchlist, so it never alerts: following one shows its every sighting (none is
 * held back by a cool-down) and nothing more.
 */
export async function followCommand(
  config: Config,
  id: string,
  opts: FollowOptions,
  signal?: AbortSignal,
  print: (line: string) => void = (l) => console.log(l),
) {
  const m = DURATION.exec(opts.for.trim());
  if (!m) throw new UsageError(`--for is a duration such as 30m or 2h, not ${opts.for}`);
  const forMs = Number(m[1]) * { s: 1e3, m: 6e4, h: 36e5 }[m[2] as "s" | "m" | "h"];
  const store = openStore(config);
  const follows = new Follows(store);
  const stop = new AbortController();
  const end = () => stop.abort();
  signal?.addEventListener("abort", end);
  process.once("SIGINT", end);
  process.once("SIGTERM", end);
  try {
    const known = isUnknownId(id) ? await store.unknowns.getUnknown(id) : await store.getPerson(id);
    if (!known)
      throw new UsageError(`no ${isUnknownId(id) ? "unknown identity" : "person on the watchlist"} ${id}`);
    const follow = await audited(config, { action: "follow.start", target: id, summary: { forMs } }, () =>
      follows.follow(id, forMs, "cli"),
    );
    const name = "name" in known && known.name ? known.name : id;
    print(
      opts.json
        ? JSON.stringify({ type: "following", id, until: follow.until })
        : `following ${name} until ${iso(follow.until)}: ${
            // Promising alerts for a stranger would be wrong: only watchlist matches alert.
            isUnknownId(id) ? "every sighting shows (unknown identities never alert)" : "every pass alerts"
          }; Ctrl-C to stop`,
    );
    let since = Date.now() - 60_000;
    const shown = new Set<string>();
    while (!stop.signal.aborted && Date.now() < follow.until) {
      const { sightings, alerts } = await newSince(store, id, since);
      for (const a of alerts) {
        if (shown.has(a.id)) continue;
        shown.add(a.id);
        const next = nextCameras(config, a.cameraId);
        print(
          opts.json
            ? JSON.stringify({
                type: "alert",
                id: a.id,
                cameraId: a.cameraId,
                ts: a.ts,
                score: a.score,
                next,
              })
            : `${iso(a.ts)}  ALERT  ${a.cameraId.padEnd(12)} score ${a.score.toFixed(3)}${next.length ? `  → next: ${next.map((n) => `${n.cameraId}${n.transitS ? ` (~${n.transitS} s)` : ""}`).join(", ")}` : ""}`,
        );
      }
      for (const s of sightings) {
        if (shown.has(s.id)) continue;
        shown.add(s.id);
        since = Math.max(since, s.startTs);
        const next = nextCameras(config, s.cameraId);
        print(
          opts.json
            ? JSON.stringify({
                type: "sighting",
                id: s.id,
                cameraId: s.cameraId,
                startTs: s.startTs,
                endTs: s.endTs,
                next,
              })
            : `${iso(s.startTs)}  seen   ${s.cameraId.padEnd(12)} ${((s.endTs - s.startTs) / 1000).toFixed(1)} s${next.length ? `  → next: ${next.map((n) => `${n.cameraId}${n.transitS ? ` (~${n.transitS} s)` : ""}`).join(", ")}` : ""}`,
        );
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, opts.pollMs);
        stop.signal.addEventListener("abort", () => (clearTimeout(t), r()), { once: true });
      });
    }
    await follows.unfollow(id);
    print(opts.json ? JSON.stringify({ type: "stopped", id }) : `stopped following ${name}`);
  } finally {
    signal?.removeEventListener("abort", end);
    process.off("SIGINT", end);
    process.off("SIGTERM", end);
    store.close();
  }
}
