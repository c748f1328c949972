import type { Config } from "../../lib/config/index.ts";
import { openStore } from "../../lib/store/open-store.ts";
import { progress } from "../../lib/telemetry/progress.ts";
import { enrolPhotos, scanWatchlistFolder, type PhotoOutcome } from "../../lib/watchlist/enrol.ts";
import { embedSingleFace } from "../../lib/watchlist/photo.ts";
import { UsageError, visionFor } from "../context.ts";

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
    const { people, skipped } = scanWatchlistFolder(opts.folder);
    for (const s of skipped) process.stderr.write(`vigil: ${s}\n`);
    jobs.push(...people);
  }
  if (opts.person) jobs.push({ id: opts.person, name: opts.name ?? opts.person, files: photos });
  if (jobs.length === 0) throw new UsageError("give --person <id> with photos, or --folder <dir>");
  if (opts.person && photos.length === 0) throw new UsageError(`no photos given for ${opts.person}`);
  const vision = await visionFor(config);
  const store = openStore(config);
  const total = jobs.reduce((n, j) => n + j.files.length, 0);
  const bar = progress("enrol", total);
  const outcomes: PhotoOutcome[] = [];
  try {
    for (const job of jobs) {
      const result = await enrolPhotos(
        vision,
        store,
        { id: job.id, name: job.name, watchlistId: opts.watchlist },
        job.files,
        () => bar.tick(),
      );
      outcomes.push(...result);
    }
  } finally {
    bar.done();
    store.close();
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
  const store = openStore(config);
  try {
    const people = await store.listPeople();
    if (json) console.log(JSON.stringify(people));
    else if (people.length === 0) console.log("the watchlist is empty");
    else
      for (const p of people)
        console.log(
          `${p.id.padEnd(24)} ${p.name.padEnd(24)} watchlist ${p.watchlistId}, ${p.faces} photo(s)`,
        );
  } finally {
    store.close();
  }
}

export async function removeCommand(config: Config, opts: { person?: string; photo?: string }) {
  const store = openStore(config);
  try {
    if (opts.person) {
      if (!(await store.removePerson(opts.person)))
        throw new UsageError(`no person ${opts.person} on the watchlist`);
      console.log(`removed ${opts.person} and their photos`);
    } else if (opts.photo) {
      if (!(await store.removeFace(opts.photo)))
        throw new UsageError(`no enrolled photo ${opts.photo} (ids are <person>:<file name>)`);
      console.log(`removed photo ${opts.photo}`);
    } else throw new UsageError("give --person <id> or --photo <person>:<file>");
  } finally {
    store.close();
  }
}

/** "This is not X": the face in the photo (e.g. a false alert's crop) stops alerting for X. */
export async function excludeCommand(config: Config, opts: { person: string; image: string; note?: string }) {
  const vision = await visionFor(config);
  const store = openStore(config);
  try {
    if (!(await store.listPeople()).some((p) => p.id === opts.person))
      throw new UsageError(`no person ${opts.person} on the watchlist`);
    const face = await embedSingleFace(vision, opts.image, opts.image);
    if (!face.ok) throw new UsageError(`${opts.image}: ${face.reason}`);
    const id = `${opts.person}:exclusion:${Date.now()}`;
    await store.addExclusion({
      id,
      personId: opts.person,
      modelId: face.modelId,
      vector: face.vector,
      note: opts.note ?? opts.image,
    });
    console.log(`stored exclusion ${id}: faces like this one no longer alert for ${opts.person}`);
  } finally {
    store.close();
  }
}

export async function thresholdCommand(
  config: Config,
  opts: { watchlist: string; value?: number; clear?: boolean },
) {
  const store = openStore(config);
  try {
    if (opts.clear) await store.setWatchlistThreshold(opts.watchlist, null);
    else if (opts.value !== undefined) {
      if (!(opts.value >= -1 && opts.value <= 1))
        throw new UsageError("a threshold is a cosine similarity in [-1, 1]");
      await store.setWatchlistThreshold(opts.watchlist, opts.value);
    }
    const current = await store.watchlistThreshold(opts.watchlist);
    console.log(
      `watchlist ${opts.watchlist}: ${current === undefined ? "uses the model's calibrated threshold" : `threshold ${current}`}`,
    );
  } finally {
    store.close();
  }
}
