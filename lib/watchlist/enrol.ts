import { readdirSync, statSync } from "node:fs";
import path from "node:path";
import type { WatchlistStore } from "../store/watchlist-store.ts";
import { embedSingleFace } from "./photo.ts";
import type { Vision } from "../vision/inference/vision.ts";

export interface PhotoOutcome {
  file: string;
  personId: string;
  ok: boolean;
  /** Why the photo was not enrolled; names the check that failed. */
  reason?: string;
}

/**
 * Enrols photos of one person through the same detect → quality → align → embed path as live video. A photo
 * must show exactly one face that passes the quality gate; otherwise it is rejected with the reason.
 */
export async function enrolPhotos(
  vision: Vision,
  store: WatchlistStore,
  person: { id: string; name: string; watchlistId?: string },
  files: string[],
  onPhoto: (outcome: PhotoOutcome) => void = () => {},
): Promise<PhotoOutcome[]> {
  await store.upsertPerson({
    id: person.id,
    name: person.name,
    watchlistId: person.watchlistId ?? "default",
  });
  const outcomes: PhotoOutcome[] = [];
  for (const file of files) {
    const outcome = await enrolOne(vision, store, person.id, file);
    outcomes.push(outcome);
    onPhoto(outcome);
  }
  return outcomes;
}

async function enrolOne(
  vision: Vision,
  store: WatchlistStore,
  personId: string,
  file: string,
): Promise<PhotoOutcome> {
  const result = await embedSingleFace(vision, file, file);
  if (!result.ok) return { file, personId, ok: false, reason: result.reason };
  await store.addFace({
    faceId: `${personId}:${path.basename(file)}`,
    personId,
    modelId: result.modelId,
    vector: result.vector,
    source: file,
  });
  return { file, personId, ok: true };
}

export interface FolderPerson {
  id: string;
  name: string;
  files: string[];
}

/** A watchlist folder: one sub-folder per person (its name is the id and display name), photos inside. */
export function scanWatchlistFolder(dir: string): { people: FolderPerson[]; skipped: string[] } {
  const people: FolderPerson[] = [];
  const skipped: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir).sort();
  } catch (err) {
    throw new Error(`cannot read watchlist folder ${dir}: ${(err as Error).message}`);
  }
  for (const entry of entries) {
    const full = path.join(dir, entry);
    if (!statSync(full).isDirectory()) {
      skipped.push(`${full}: not a person folder (watchlist folders hold one sub-folder per person)`);
      continue;
    }
    const files = readdirSync(full)
      .sort()
      .map((f) => path.join(full, f))
      .filter((f) => statSync(f).isFile());
    // Non-image files are not silently dropped: they go through enrolment and are rejected with a reason.
    people.push({ id: entry, name: entry, files });
    if (files.length === 0) skipped.push(`${full}: no photos`);
  }
  return { people, skipped };
}
