import { readdirSync, statSync } from "node:fs";
import path from "node:path";
import type { WatchlistStore } from "../store/watchlist-store.ts";
import { photoEmbedder, photoName, type PhotoEmbedder, type PhotoInput } from "./photo.ts";
import type { Vision } from "../vision/inference/vision.ts";
import { encodeJpeg } from "../vision/pixels/image.ts";

export interface PhotoOutcome {
  file: string;
  personId: string;
  ok: boolean;
  /** Why the photo was not enrolled; names the check that failed. */
  reason?: string;
  /** The enrolled photo's id (`<person>:<file name>`), when it was enrolled. */
  faceId?: string;
}

/** `<person>:<file name>`: the same photo enrolled again replaces itself. */
export const faceIdFor = (personId: string, photo: PhotoInput) =>
  `${personId}:${path.basename(photoName(photo))}`;

/**
 * Enrols photos of one person through the same detect → quality → align → embed path as live video. A photo
 * must show exactly one face that passes the quality gate; otherwise it is rejected with the reason. A person
 * who is not on the watchlist yet is added with the first accepted photo, so a batch of rejected photos leaves
 * nothing behind (an existing person's name and watchlist are updated either way). Each enrolled photo keeps
 * its aligned face as a small JPEG beside the vector, for operators to compare with what a camera saw.
 */
export async function enrolWith(
  photos: PhotoEmbedder,
  store: WatchlistStore,
  person: { id: string; name: string; watchlistId: string },
  files: PhotoInput[],
  onPhoto: (outcome: PhotoOutcome) => void = () => {},
): Promise<PhotoOutcome[]> {
  const existing = await store.getPerson(person.id);
  let stored = false;
  const savePerson = async () => {
    if (!stored) await store.upsertPerson(person);
    stored = true;
  };
  if (existing || files.length === 0) await savePerson();
  const outcomes: PhotoOutcome[] = [];
  for (const file of files) {
    const label = photoName(file);
    const result = await photos.embedPhoto(file);
    let outcome: PhotoOutcome;
    if (result.ok) {
      await savePerson();
      const faceId = faceIdFor(person.id, file);
      await store.addFace({
        faceId,
        personId: person.id,
        modelId: result.modelId,
        vector: result.vector,
        source: label,
        // The aligned face beside the vector (a few kB), so an alert can be shown next to the photo it matched.
        crop: await encodeJpeg(result.face),
      });
      outcome = { file: label, personId: person.id, ok: true, faceId };
    } else outcome = { file: label, personId: person.id, ok: false, reason: result.reason };
    outcomes.push(outcome);
    onPhoto(outcome);
  }
  return outcomes;
}

/** The embedded run's enrolment of a watchlist folder; `WatchlistService.enrol` is the same with announcements. */
export async function enrolPhotos(
  vision: Pick<Vision, "analyzer" | "embedder">,
  store: WatchlistStore,
  person: { id: string; name: string; watchlistId?: string },
  files: string[],
  onPhoto: (outcome: PhotoOutcome) => void = () => {},
): Promise<PhotoOutcome[]> {
  return enrolWith(
    photoEmbedder(vision),
    store,
    { ...person, watchlistId: person.watchlistId ?? "default" },
    files,
    onPhoto,
  );
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
