import { audited } from "../../lib/api/audit.ts";
import type { Config } from "../../lib/config/index.ts";
import { parseTime } from "../../lib/history/timeline.ts";
import { UnknownService } from "../../lib/identities/service.ts";
import { InvalidInputError, NotFoundError } from "../../lib/store/errors.ts";
import type { UnknownIdentity } from "../../lib/store/identity-store.ts";
import { openStore } from "../../lib/store/open-store.ts";
import { photoEmbedder } from "../../lib/watchlist/photo.ts";
import { WatchlistService } from "../../lib/watchlist/service.ts";
import { UsageError, visionFor } from "../context.ts";

const iso = (ts: number) => new Date(ts).toISOString();
const time = (text?: string) => (text ? parseTime(text) : undefined);

/**
 * Runs `use` over the unknown-identity service on the configured store, closing it after; models load only for a
 * promotion. Every command (`action`) is written to the audit log under the API's name for it, by `cli:<user>`:
 * looking at strangers is recorded as the API records it, not only changing them.
 */
async function withUnknowns<T>(
  config: Config,
  use: (unknowns: UnknownService) => Promise<T>,
  action: {
    name: string;
    target: string | null;
    /** What the call asked for (as the API's entry says). */
    request?: Record<string, unknown>;
    summary?: (result: T) => Record<string, unknown>;
  },
): Promise<T> {
  const run = async () => {
    const store = openStore(config);
    try {
      const watchlist = new WatchlistService({ store, photos: photoEmbedder(() => visionFor(config)) });
      return await use(new UnknownService({ store: store.unknowns, sightings: store, watchlist }));
    } catch (err) {
      if (err instanceof NotFoundError || err instanceof InvalidInputError) throw new UsageError(err.message);
      throw err;
    } finally {
      store.close();
    }
  };
  return audited(
    config,
    { action: action.name, target: action.target, summary: action.request, result: action.summary },
    run,
  );
}

const line = (u: UnknownIdentity) =>
  `${u.id}  ${(u.name ?? "-").padEnd(16)} ${String(u.count).padStart(4)} sighting(s)  ${iso(u.firstSeen)} → ${iso(u.lastSeen)}  cameras ${u.cameras.join(",")}${u.promotedTo ? `  (promoted to ${u.promotedTo})` : ""}`;

export interface UnknownsListOptions {
  camera?: string[];
  since?: string;
  until?: string;
  limit: number;
  cursor?: string;
  json?: boolean;
}

export async function unknownsListCommand(config: Config, opts: UnknownsListOptions) {
  const query = {
    cameras: opts.camera?.length ? opts.camera : undefined,
    seenSince: time(opts.since),
    seenUntil: time(opts.until),
    limit: opts.limit,
  };
  const page = await withUnknowns(config, (u) => u.list({ ...query, cursor: opts.cursor }), {
    name: "unknown.list",
    target: null,
    request: Object.fromEntries(Object.entries(query).filter(([, v]) => v !== undefined)),
    summary: (p) => ({ returned: p.items.length }),
  });
  if (opts.json) console.log(JSON.stringify(page));
  else {
    if (page.items.length === 0) console.log("no unknown identities");
    for (const u of page.items) console.log(line(u));
    if (page.nextCursor) console.log(`more: --cursor ${page.nextCursor}`);
  }
  return page;
}

export async function unknownsShowCommand(config: Config, id: string, opts: { json?: boolean }) {
  const shown = await withUnknowns(
    config,
    async (u) => ({
      identity: await u.get(id),
      sightings: (await u.sightings(id, { limit: 20 })).items,
    }),
    { name: "unknown.view", target: id },
  );
  if (opts.json) console.log(JSON.stringify(shown));
  else {
    console.log(line(shown.identity));
    console.log(`best sightings: ${shown.identity.bestSightings.join(", ")}`);
    for (const s of shown.sightings) console.log(`  ${iso(s.startTs)}  ${s.cameraId.padEnd(12)} ${s.id}`);
  }
  return shown;
}

export async function unknownsNameCommand(config: Config, id: string, name: string | null) {
  const named = await withUnknowns(config, (u) => u.name(id, name), {
    name: "unknown.name",
    target: id,
    summary: () => ({ name }),
  });
  console.log(name === null ? `${id}: name cleared` : `${id} is now named ${named.name}`);
  return named;
}

export async function unknownsPromoteCommand(
  config: Config,
  id: string,
  opts: { person?: string; name?: string; watchlist?: string; json?: boolean },
) {
  const result = await withUnknowns(
    config,
    (u) => u.promote(id, { personId: opts.person, name: opts.name, watchlistId: opts.watchlist }),
    {
      name: "unknown.promote",
      target: id,
      summary: (r) => ({ personId: r.personId, enrolled: r.enrolled.length, rejected: r.rejected.length }),
    },
  );
  if (opts.json) console.log(JSON.stringify(result));
  else {
    for (const r of result.rejected) console.log(`REJECTED ${r.sightingId}: ${r.reason}`);
    console.log(
      result.enrolled.length > 0
        ? `${id} promoted to ${result.personId}: ${result.enrolled.length} crop(s) enrolled`
        : `${id} not promoted: no crop passed enrolment`,
    );
  }
  if (result.enrolled.length === 0) process.exitCode = 1;
  return result;
}

export async function unknownsMergeCommand(config: Config, into: string, from: string) {
  const merged = await withUnknowns(config, (u) => u.merge(into, from), {
    name: "unknown.merge",
    target: into,
    summary: () => ({ from }),
  });
  console.log(`merged ${from} into ${into}: ${line(merged)}`);
  return merged;
}

export async function unknownsSplitCommand(config: Config, id: string, sightingIds: string[]) {
  const created = await withUnknowns(config, (u) => u.split(id, sightingIds), {
    name: "unknown.split",
    target: id,
    summary: (c) => ({ sightingIds, created: c.id }),
  });
  console.log(`split ${sightingIds.length} sighting(s) off ${id} into ${created.id}`);
  return created;
}

export async function unknownsDeleteCommand(config: Config, id: string) {
  await withUnknowns(config, (u) => u.delete(id), { name: "unknown.delete", target: id });
  console.log(`deleted ${id}; its sightings stay, unlabelled`);
}
