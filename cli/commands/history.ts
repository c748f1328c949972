import { writeFileSync } from "node:fs";
import { audited, defined, fileSummary } from "../../lib/api/audit.ts";
import type { Config } from "../../lib/config/index.ts";
import { HistoryService } from "../../lib/history/service.ts";
import { parseTime } from "../../lib/history/timeline.ts";
import { InvalidInputError, NotFoundError } from "../../lib/store/errors.ts";
import { openStore } from "../../lib/store/open-store.ts";
import { thresholdFor } from "../../lib/vision/models/calibration.ts";
import { photoEmbedder } from "../../lib/watchlist/photo.ts";
import { UsageError, visionFor } from "../context.ts";

const iso = (ts: number) => new Date(ts).toISOString();
const time = (text?: string) => (text ? parseTime(text) : undefined);

/** Runs `use` over a history service on the configured store, closing the store after. */
export async function withHistory<T>(
  config: Config,
  use: (history: HistoryService) => Promise<T>,
): Promise<T> {
  const store = openStore(config);
  try {
    return await use(
      new HistoryService({
        store,
        photos: photoEmbedder(() => visionFor(config)),
        thresholdFor: (modelId) => thresholdFor(modelId, config),
      }),
    );
  } catch (err) {
    if (err instanceof NotFoundError || err instanceof InvalidInputError) throw new UsageError(err.message);
    throw err;
  } finally {
    store.close();
  }
}

export interface SearchOptions {
  image: string;
  camera?: string[];
  since?: string;
  until?: string;
  top: number;
  json?: boolean;
}

/** "Where has this face been?": stored sightings by similarity, with camera and time filters. */
export async function searchCommand(config: Config, opts: SearchOptions) {
  const filters = { cameras: opts.camera, since: time(opts.since), until: time(opts.until), limit: opts.top };
  const result = await audited(
    config,
    {
      action: "search",
      target: null,
      summary: defined({ photo: fileSummary(opts.image), ...filters }),
      result: (r) => ({ hits: r.hits.length }),
    },
    () => withHistory(config, (h) => h.searchByPhoto(opts.image, filters)),
  );
  const { hits, threshold } = result;
  if (opts.json) {
    console.log(
      JSON.stringify({
        threshold,
        hits: hits.map((h) => ({ ...h.sighting, score: h.score, sameperson: h.samePerson })),
      }),
    );
    return hits;
  }
  if (hits.length === 0) console.log("no sightings");
  for (const h of hits) {
    const s = h.sighting;
    console.log(
      `${h.score.toFixed(3)} ${h.samePerson ? "≥" : "<"} ${threshold.toFixed(3)}  ${iso(s.startTs)}  ${s.cameraId.padEnd(12)} ${s.id}${s.match ? `  (matched ${s.match.personId})` : ""}`,
    );
  }
  return hits;
}

export interface TimelineOptions {
  person?: string;
  image?: string;
  since?: string;
  until?: string;
  mergeGapS: number;
  json?: boolean;
}

/** A person's path across cameras, by their watchlist matches or by a photo. */
export async function timelineCommand(config: Config, opts: TimelineOptions) {
  if (!opts.person === !opts.image)
    throw new UsageError("give exactly one of --person <id> or --image <photo>");
  const span = { since: time(opts.since), until: time(opts.until), mergeGapMs: opts.mergeGapS * 1000 };
  const { visits } = await audited(
    config,
    {
      action: opts.person ? "timeline.person" : "timeline.photo",
      target: opts.person ?? null,
      summary: defined({ ...(opts.image ? { photo: fileSummary(opts.image) } : {}), ...span }),
    },
    () =>
      withHistory(config, (h) =>
        h.timeline(opts.person ? { personId: opts.person } : { photo: opts.image! }, span),
      ),
  );
  if (opts.json) console.log(JSON.stringify({ visits }));
  else if (visits.length === 0) console.log("no sightings");
  else
    for (const v of visits)
      console.log(
        `${iso(v.startTs)} → ${iso(v.endTs)}  ${v.cameraId.padEnd(12)} ${v.sightings.length} sighting(s), ${v.faces} face(s)${v.score !== null ? `, best ${v.score.toFixed(3)}` : ""}`,
      );
  return visits;
}

export interface BrowseOptions {
  camera?: string[];
  person?: string;
  since?: string;
  until?: string;
  limit: number;
  cursor?: string;
  json?: boolean;
}

/** Sightings newest first, without a photo. */
export async function sightingsCommand(config: Config, opts: BrowseOptions) {
  const query = {
    cameras: opts.camera,
    personId: opts.person,
    since: time(opts.since),
    until: time(opts.until),
    limit: opts.limit,
    cursor: opts.cursor,
  };
  const page = await audited(
    config,
    {
      action: "sightings.browse",
      target: opts.person ?? null,
      summary: defined({ ...query, cursor: undefined }),
    },
    () => withHistory(config, (h) => h.browseSightings(query)),
  );
  if (opts.json) console.log(JSON.stringify(page));
  else {
    if (page.items.length === 0) console.log("no sightings");
    for (const s of page.items)
      console.log(
        `${iso(s.startTs)}  ${s.cameraId.padEnd(12)} ${s.id}  ${s.faces} face(s)${s.match ? `  ${s.match.personId} ${s.match.score.toFixed(3)}` : ""}`,
      );
    if (page.nextCursor) console.log(`more: --cursor ${page.nextCursor}`);
  }
  return page;
}

export interface AlertsOptions {
  camera?: string[];
  person?: string;
  watchlist?: string;
  since?: string;
  until?: string;
  /** Only alerts nobody has acknowledged. */
  open?: boolean;
  limit: number;
  cursor?: string;
  json?: boolean;
}

export async function alertsCommand(config: Config, opts: AlertsOptions) {
  const page = await withHistory(config, (h) =>
    h.listAlerts({
      cameras: opts.camera,
      personId: opts.person,
      watchlistId: opts.watchlist,
      since: time(opts.since),
      until: time(opts.until),
      acknowledged: opts.open ? false : undefined,
      limit: opts.limit,
      cursor: opts.cursor,
    }),
  );
  if (opts.json) console.log(JSON.stringify(page));
  else {
    if (page.items.length === 0) console.log("no alerts");
    for (const a of page.items)
      console.log(
        `${iso(a.ts)}  ${a.cameraId.padEnd(12)} ${a.personId} ${a.score.toFixed(3)}  ${a.id}${a.acknowledged ? `  (acknowledged by ${a.acknowledged.by})` : ""}`,
      );
    if (page.nextCursor) console.log(`more: --cursor ${page.nextCursor}`);
  }
  return page;
}

export async function ackCommand(config: Config, alertId: string, opts: { by: string; note?: string }) {
  const alert = await audited(
    config,
    { action: "alert.acknowledge", target: alertId, summary: defined({ by: opts.by, note: opts.note }) },
    () => withHistory(config, (h) => h.acknowledgeAlert(alertId, opts)),
  );
  console.log(`${alert.id}: acknowledged by ${alert.acknowledged!.by} at ${iso(alert.acknowledged!.ts)}`);
  return alert;
}

/** Writes the JPEG of a sighting's best face, or of an alert's face. */
export async function cropCommand(config: Config, opts: { sighting?: string; alert?: string; out: string }) {
  if (!opts.sighting === !opts.alert)
    throw new UsageError("give exactly one of --sighting <id> or --alert <id>");
  const jpeg = await audited(
    config,
    {
      action: opts.sighting ? "export.sighting-crop" : "export.alert-crop",
      target: opts.sighting ?? opts.alert!,
      summary: { out: opts.out },
    },
    () =>
      withHistory(config, (h) => (opts.sighting ? h.sightingCrop(opts.sighting) : h.alertCrop(opts.alert!))),
  );
  writeFileSync(opts.out, jpeg);
  console.log(`wrote ${opts.out} (${jpeg.length} bytes)`);
}
