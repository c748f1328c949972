import path from "node:path";
import { audited, defined } from "../../lib/api/audit.ts";
import { openStageBus } from "../../lib/bus/open-bus.ts";
import type { Config } from "../../lib/config/index.ts";
import { busChanges } from "../../lib/watchlist/bus-changes.ts";
import { InvalidInputError, NotFoundError } from "../../lib/store/errors.ts";
import { openStore } from "../../lib/store/open-store.ts";
import { progress } from "../../lib/telemetry/progress.ts";
import type { WatchlistChanges } from "../../lib/watchlist/changes.ts";
import { scanWatchlistFolder, type PhotoOutcome } from "../../lib/watchlist/enrol.ts";
import { photoEmbedder } from "../../lib/watchlist/photo.ts";
import { WatchlistService } from "../../lib/watchlist/service.ts";
import { UsageError, visionFor } from "../context.ts";

/**
 * Runs `use` over a watchlist service on the configured store, closing the store after. Models load only if a
 * photo is looked at. A missing person or a refused photo is the user's to fix: one line, exit 1.
 */
export async function withWatchlist<T>(
  config: Config,
  use: (watchlist: WatchlistService) => Promise<T>,
  changes?: WatchlistChanges,
): Promise<T> {
  const store = openStore(config);
  // Scale-out: running match services hear of the change at once on the bus (they would also notice at their
  // next store check; this makes it immediate for stores that cache).
  const bus = !changes && config.bus.kind === "kafka" ? await openStageBus(config) : undefined;
  try {
    return await use(
      new WatchlistService({
        store,
        photos: photoEmbedder(() => visionFor(config)),
        changes: changes ?? (bus ? busChanges(bus) : undefined),
      }),
    );
  } catch (err) {
    if (err instanceof NotFoundError || err instanceof InvalidInputError) throw new UsageError(err.message);
    throw err;
  } finally {
    store.close();
    await bus?.close();
  }
}

export interface EnrolOptions {
  person?: string;
  name?: string;
  watchlist: string;
  folder?: string;
  json?: boolean;
}

/** Enrols photos for one person, or a whole folder (one sub-folder per person), reporting every photo. */
export async function enrolCommand(
  config: Config,
  photos: string[],
  opts: EnrolOptions,
): Promise<PhotoOutcome[]> {
  const jobs: { id: string; name: string; files: string[] }[] = [];
  if (opts.folder) {
    let scanned;
    try {
      scanned = scanWatchlistFolder(opts.folder);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const { people, skipped } = scanned;
    for (const s of skipped) process.stderr.write(`vigil: ${s}\n`);
    jobs.push(...people);
  }
  if (opts.person) jobs.push({ id: opts.person, name: opts.name ?? opts.person, files: photos });
  if (jobs.length === 0) throw new UsageError("give --person <id> with photos, or --folder <dir>");
  if (opts.person && photos.length === 0) throw new UsageError(`no photos given for ${opts.person}`);
  const bar = progress(
    "enrol",
    jobs.reduce((n, j) => n + j.files.length, 0),
  );
  const outcomes: PhotoOutcome[] = [];
  try {
    await withWatchlist(config, async (watchlist) => {
      for (const job of jobs) {
        const request = { id: job.id, name: job.name, watchlistId: opts.watchlist };
        const result = await audited(
          config,
          {
            action: "person.enrol",
            target: job.id,
            summary: { watchlist: opts.watchlist, files: job.files.map((f) => path.basename(f)) },
            result: (r) => ({
              enrolled: r.outcomes.filter((o) => o.ok).length,
              refused: r.outcomes.filter((o) => !o.ok).length,
            }),
          },
          () => watchlist.enrol(request, job.files, () => bar.tick()),
        );
        outcomes.push(...result.outcomes);
      }
    });
  } finally {
    bar.done();
  }
  if (opts.json) console.log(JSON.stringify(outcomes));
  else {
    for (const o of outcomes)
      console.log(
        o.ok ? `enrolled ${o.personId}: ${o.file}` : `REJECTED ${o.file} (${o.personId}): ${o.reason}`,
      );
    const ok = outcomes.filter((o) => o.ok).length;
    console.log(`${ok} of ${outcomes.length} photo(s) enrolled for ${jobs.length} person(s)`);
  }
  return outcomes;
}

export async function listPeopleCommand(config: Config, json: boolean) {
  const people = await withWatchlist(config, (w) => w.listPeople());
  if (json) console.log(JSON.stringify(people));
  else if (people.length === 0) console.log("the watchlist is empty");
  else
    for (const p of people)
      console.log(`${p.id.padEnd(24)} ${p.name.padEnd(24)} watchlist ${p.watchlistId}, ${p.faces} photo(s)`);
}

export async function removeCommand(config: Config, opts: { person?: string; photo?: string }) {
  if (!opts.person === !opts.photo) throw new UsageError("give --person <id> or --photo <person>:<file>");
  if (opts.person) {
    await audited(config, { action: "person.remove", target: opts.person }, () =>
      withWatchlist(config, (w) => w.removePerson(opts.person!)),
    );
    console.log(`removed ${opts.person} and their photos`);
  } else {
    await audited(config, { action: "person.photo.remove", target: opts.photo! }, () =>
      withWatchlist(config, (w) => w.removePhoto(opts.photo!)),
    );
    console.log(`removed photo ${opts.photo}`);
  }
}

export interface ExcludeOptions {
  person?: string;
  image?: string;
  alert?: string;
  sighting?: string;
  note?: string;
}

/** "This is not X": the face in a photo, an alert or a sighting stops alerting for X. */
export async function excludeCommand(config: Config, opts: ExcludeOptions) {
  const sources = [opts.image, opts.alert, opts.sighting].filter((s) => s !== undefined);
  if (sources.length !== 1)
    throw new UsageError("give exactly one of --image <photo>, --alert <id>, --sighting <id>");
  if (opts.image && !opts.person) throw new UsageError("--image needs --person <id>: who is this not?");
  const note = opts.note;
  const exclusion = await audited(
    config,
    {
      action: "exclusion.add",
      target: opts.person ?? null,
      summary: defined({
        image: opts.image && path.basename(opts.image),
        alert: opts.alert,
        sighting: opts.sighting,
        note,
      }),
      result: (e) => ({ exclusion: e.id, person: e.personId }),
    },
    () =>
      withWatchlist(config, (w) =>
        opts.image
          ? w.excludeFromPhoto(opts.person!, opts.image, note)
          : opts.alert
            ? w.excludeFromAlert(opts.alert, { personId: opts.person, note })
            : w.excludeFromSighting(opts.sighting!, { personId: opts.person, note }),
      ),
  );
  console.log(
    `stored exclusion ${exclusion.id}: faces like this one no longer alert for ${exclusion.personId}`,
  );
  return exclusion;
}

export async function thresholdCommand(
  config: Config,
  opts: { watchlist: string; value?: number; clear?: boolean },
) {
  const change = opts.clear ? null : opts.value;
  const info =
    change === undefined
      ? await withWatchlist(config, (w) => w.watchlist(opts.watchlist))
      : await audited(
          config,
          { action: "watchlist.threshold", target: opts.watchlist, summary: { threshold: change } },
          () => withWatchlist(config, (w) => w.setThreshold(opts.watchlist, change)),
        );
  console.log(
    `watchlist ${info.id}: ${info.threshold === undefined ? "uses the model's calibrated threshold" : `threshold ${info.threshold}`}`,
  );
}
