import { createHash } from "node:crypto";
import { vectorToBytes } from "../contracts/index.ts";
import type { AlertStore } from "../store/alert-store.ts";
import { InvalidInputError, NotFoundError } from "../store/errors.ts";
import type { SightingStore } from "../store/sighting-store.ts";
import {
  alertExclusionId,
  type EnrolledPhoto,
  type ExclusionInfo,
  type Person,
  type WatchlistInfo,
  type WatchlistStore,
} from "../store/watchlist-store.ts";
import { silentChanges, type WatchlistChange, type WatchlistChanges } from "./changes.ts";
import { enrolWith, scanWatchlistFolder, type PhotoOutcome } from "./enrol.ts";
import { photoName, type PhotoEmbedder, type PhotoInput } from "./photo.ts";

export interface WatchlistServiceDeps {
  store: WatchlistStore & Pick<SightingStore, "getSighting"> & Pick<AlertStore, "getAlert" | "alertCrop">;
  photos: PhotoEmbedder;
  /** Told of every change once it is stored. */
  changes?: WatchlistChanges;
  clock?: () => number;
}

export interface PersonRequest {
  id: string;
  /** Default: the current name, or the id for someone new. */
  name?: string;
  /** Default: the current watchlist, or `default` for someone new. */
  watchlistId?: string;
}

export interface EnrolResult {
  /** Undefined when the person is new and no photo was accepted: nothing was stored. */
  person: (Person & { faces: number }) | undefined;
  outcomes: PhotoOutcome[];
}

export interface PersonDetails extends Person {
  faces: number;
  photos: EnrolledPhoto[];
  exclusions: ExclusionInfo[];
}

/** 1–200 printable characters, not starting or ending with a space: ids travel in URLs, logs and file names. */
const ID = /^(?!\s)[^\p{Cc}]{1,200}(?<!\s)$/u;

/**
 * The watchlist's use cases in one place — enrolment with a reason for every refused photo, removal, "this is not
 * X" exclusions (from a photo, a sighting or an alert) and per-watchlist thresholds — for the CLI and the HTTP API
 * alike. Each change is stored first, then announced.
 */
export class WatchlistService {
  private readonly store: WatchlistServiceDeps["store"];
  private readonly photos: PhotoEmbedder;
  private readonly changes: WatchlistChanges;
  private readonly clock: () => number;

  constructor(deps: WatchlistServiceDeps) {
    this.store = deps.store;
    this.photos = deps.photos;
    this.changes = deps.changes ?? silentChanges;
    this.clock = deps.clock ?? Date.now;
  }

  private async announce(change: Omit<WatchlistChange, "ts">) {
    await this.changes.announce({ ...change, ts: this.clock() });
  }

  private async requirePerson(personId: string) {
    const person = await this.store.getPerson(personId);
    if (!person) throw new NotFoundError(`no person ${personId} on the watchlist`);
    return person;
  }

  /**
   * Adds photos to a person (adding the person when new; with no photos, just adds or updates the person). Every
   * photo gets an outcome, in order: enrolled, or refused with the reason (no face, several faces, below the
   * quality gate, not an image).
   */
  async enrol(
    request: PersonRequest,
    photos: PhotoInput[],
    onPhoto?: (outcome: PhotoOutcome) => void,
  ): Promise<EnrolResult> {
    if (!ID.test(request.id))
      throw new InvalidInputError(
        `person id ${JSON.stringify(request.id)} must be 1–200 printable characters, without leading or trailing spaces`,
      );
    const existing = await this.store.getPerson(request.id);
    const person = {
      id: request.id,
      name: request.name ?? existing?.name ?? request.id,
      watchlistId: request.watchlistId ?? existing?.watchlistId ?? "default",
    };
    if (!person.watchlistId) throw new InvalidInputError("a watchlist id cannot be empty");
    const outcomes = await enrolWith(this.photos, this.store, person, photos, onPhoto);
    const stored = await this.store.getPerson(person.id);
    if (stored)
      await this.announce({ kind: "enrolled", watchlistId: stored.watchlistId, personId: stored.id });
    return { person: stored, outcomes };
  }

  /** A folder with one sub-folder per person (its name is the person's id and name), photos inside. */
  async enrolFolder(
    dir: string,
    options: { watchlistId?: string } = {},
    onPhoto?: (outcome: PhotoOutcome) => void,
  ): Promise<{ people: EnrolResult[]; skipped: string[] }> {
    const { people, skipped } = scanWatchlistFolder(dir);
    const results: EnrolResult[] = [];
    for (const p of people)
      results.push(
        await this.enrol({ id: p.id, name: p.name, watchlistId: options.watchlistId }, p.files, onPhoto),
      );
    return { people: results, skipped };
  }

  listPeople() {
    return this.store.listPeople();
  }

  async person(personId: string): Promise<PersonDetails> {
    const person = await this.requirePerson(personId);
    const [photos, exclusions] = await Promise.all([
      this.store.listFaces(personId),
      this.store.listExclusions(personId),
    ]);
    return { ...person, photos, exclusions };
  }

  /**
   * The aligned face kept with one of the person's enrolled photos, as JPEG. Not found when the person has no
   * such photo, or when it was enrolled before crops were kept.
   */
  async photoCrop(personId: string, faceId: string): Promise<Uint8Array> {
    const face = await this.store.getFace(faceId);
    if (!face || face.personId !== personId)
      throw new NotFoundError(`${personId} has no enrolled photo ${faceId}`);
    const crop = await this.store.faceCrop(faceId);
    if (!crop)
      throw new NotFoundError(
        `enrolled photo ${faceId} has no face crop (it was enrolled before crops were kept)`,
      );
    return crop;
  }

  /**
   * The enrolled photo to show beside one of the person's alerts: the one the alert matched (`matchedFaceId`) while
   * it is still enrolled with a crop; else the first, by id, that has a crop (alerts raised before the matched face
   * was recorded, a photo removed since or enrolled before crops were kept).
   */
  async photoToShow(personId: string, matchedFaceId?: string | null): Promise<EnrolledPhoto | undefined> {
    const photos = (await this.store.listFaces(personId)).filter((f) => f.hasCrop);
    return photos.find((f) => f.faceId === matchedFaceId) ?? photos[0];
  }

  /** Removes the person, their photos and their exclusions. */
  async removePerson(personId: string): Promise<void> {
    const person = await this.requirePerson(personId);
    await this.store.removePerson(personId);
    await this.announce({ kind: "removed", watchlistId: person.watchlistId, personId });
  }

  /** One enrolled photo, by its id (`<person>:<file name>`). */
  async removePhoto(faceId: string): Promise<void> {
    const face = await this.store.getFace(faceId);
    if (!face) throw new NotFoundError(`no enrolled photo ${faceId} (ids are <person>:<file name>)`);
    const person = await this.store.getPerson(face.personId);
    await this.store.removeFace(faceId);
    await this.announce({
      kind: "removed",
      watchlistId: person?.watchlistId ?? "default",
      personId: face.personId,
    });
  }

  /** "This is not X", from a photo of the face that was mistaken for X (e.g. a false alert saved to disk). */
  async excludeFromPhoto(personId: string, photo: PhotoInput, note?: string): Promise<ExclusionInfo> {
    const person = await this.requirePerson(personId);
    const face = await this.photos.embedPhoto(photo);
    if (!face.ok) throw new InvalidInputError(`${photoName(photo)}: ${face.reason}`);
    // Named after the face itself: the same photo excluded twice is one exclusion.
    const digest = createHash("sha256").update(vectorToBytes(face.vector)).digest("hex").slice(0, 16);
    return this.exclude(person, `${personId}:exclusion:photo:${digest}`, face, note ?? photoName(photo));
  }

  /**
   * "This is not X", from a stored sighting: its track's mean vector becomes the exclusion. X defaults to the
   * person the sighting was matched to.
   */
  async excludeFromSighting(sightingId: string, options: { personId?: string; note?: string } = {}) {
    const sighting = await this.store.getSighting(sightingId);
    if (!sighting) throw new NotFoundError(`no sighting ${sightingId}`);
    const personId = options.personId ?? sighting.match?.personId;
    if (!personId) throw new InvalidInputError(`sighting ${sightingId} matched nobody: say who it is not`);
    const person = await this.requirePerson(personId);
    return this.exclude(
      person,
      `${personId}:exclusion:${sightingId}`,
      { modelId: sighting.modelId, vector: sighting.vector },
      options.note ?? `sighting ${sightingId}`,
    );
  }

  /**
   * "This is not X", from an alert: the alerting face's stored vector, or, for an alert stored without one, its
   * aligned crop embedded again. X defaults to the person the alert was for.
   */
  async excludeFromAlert(alertId: string, options: { personId?: string; note?: string } = {}) {
    const alert = await this.store.getAlert(alertId);
    if (!alert) throw new NotFoundError(`no alert ${alertId}`);
    const person = await this.requirePerson(options.personId ?? alert.personId);
    let face = alert.vector ? { modelId: alert.modelId, vector: alert.vector } : undefined;
    if (!face) {
      const crop = await this.store.alertCrop(alertId);
      const embedded = crop ? await this.photos.embedAlignedCrop(crop, `alert ${alertId}`) : undefined;
      if (!embedded?.ok)
        throw new InvalidInputError(
          `alert ${alertId} has no stored face to exclude${embedded ? `: ${embedded.reason}` : ""}`,
        );
      if (embedded.modelId !== alert.modelId)
        throw new InvalidInputError(
          `alert ${alertId} was matched with model ${alert.modelId}; this process embeds with ${embedded.modelId}`,
        );
      face = embedded;
    }
    return this.exclude(
      person,
      alertExclusionId(person.id, alertId),
      face,
      options.note ?? `alert ${alertId}`,
    );
  }

  private async exclude(
    person: Person,
    id: string,
    face: { modelId: string; vector: Float32Array },
    note: string,
  ): Promise<ExclusionInfo> {
    await this.store.addExclusion({
      id,
      personId: person.id,
      modelId: face.modelId,
      vector: face.vector,
      note,
    });
    await this.announce({ kind: "excluded", watchlistId: person.watchlistId, personId: person.id });
    return { id, personId: person.id, modelId: face.modelId, note };
  }

  async listExclusions(personId: string): Promise<ExclusionInfo[]> {
    await this.requirePerson(personId);
    return this.store.listExclusions(personId);
  }

  async removeExclusion(personId: string, exclusionId: string): Promise<void> {
    const person = await this.requirePerson(personId);
    if (!(await this.store.listExclusions(personId)).some((e) => e.id === exclusionId))
      throw new NotFoundError(`${personId} has no exclusion ${exclusionId}`);
    await this.store.removeExclusion(exclusionId);
    await this.announce({ kind: "excluded", watchlistId: person.watchlistId, personId });
  }

  /** A cosine similarity in [-1, 1] for this watchlist, or null to go back to the model's calibrated one. */
  async setThreshold(watchlistId: string, threshold: number | null): Promise<WatchlistInfo> {
    if (!watchlistId) throw new InvalidInputError("a watchlist id cannot be empty");
    if (threshold !== null && !(Number.isFinite(threshold) && threshold >= -1 && threshold <= 1))
      throw new InvalidInputError(`a threshold is a cosine similarity in [-1, 1], got ${threshold}`);
    await this.store.setWatchlistThreshold(watchlistId, threshold);
    await this.announce({ kind: "threshold", watchlistId });
    return this.watchlist(watchlistId);
  }

  /** A watchlist's threshold (undefined: the calibrated one applies) and head count; empty ones too. */
  async watchlist(watchlistId: string): Promise<WatchlistInfo> {
    const found = (await this.store.listWatchlists()).find((w) => w.id === watchlistId);
    return (
      found ?? { id: watchlistId, threshold: await this.store.watchlistThreshold(watchlistId), people: 0 }
    );
  }

  listWatchlists() {
    return this.store.listWatchlists();
  }
}
