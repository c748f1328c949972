import { existsSync } from "node:fs";
import path from "node:path";
import { storePath, type Config } from "../config/index.ts";
import type { EmbeddingCache } from "../eval/embedding-cache.ts";
import { extractFaces, scanIdentities } from "../eval/faces.ts";
import type { Vision } from "../vision/inference/vision.ts";
import type { AlertStore } from "../store/alert-store.ts";
import { openStore } from "../store/open-store.ts";
import { MAX_PAGE } from "../store/paging.ts";
import { alertExclusionId, type WatchlistStore } from "../store/watchlist-store.ts";
import { TrainingDataError } from "../vision/models/heads.ts";
import type { TrainSample } from "./trainer.ts";

/**
 * Where a head's training data comes from: base-model embeddings labelled by identity. Photos go through the
 * product's detect → quality → align → embed path (with the flip when embed.flip is on); a face below the live
 * quality gate is left out, since such faces are never matched either.
 */
export interface TrainingData {
  source: string;
  samples: TrainSample[];
  /** Images or records left out, with why. */
  skipped: string[];
  identities: number;
  images: number;
}

type OnProgress = (phase: string, total: number) => { tick(): void; done(): void };

/** A folder of identities (one sub-folder per person), base embeddings from the cache where they are in it. */
export async function folderData(
  vision: Vision,
  dir: string,
  cache: EmbeddingCache,
  onProgress: OnProgress,
): Promise<TrainingData> {
  if (!existsSync(dir)) throw new TrainingDataError(`training data folder ${dir} does not exist`);
  const identities = scanIdentities(dir);
  if (identities.length === 0)
    throw new TrainingDataError(
      `${dir} holds no identity folders with images (one sub-folder per person, photos inside)`,
    );
  const files = identities.flatMap((i) => i.files);
  const samples: TrainSample[] = [];
  const skipped: string[] = [];
  const misses: string[] = [];
  for (const file of files) {
    const hit = cache.get(path.join(dir, file));
    if (!hit) misses.push(file);
    else if (!hit.detected) skipped.push(`${file}: no face found`);
    else if (hit.gateReasons.length > 0)
      skipped.push(`${file}: below the quality gate (${hit.gateReasons.join(", ")})`);
    else samples.push({ identity: path.dirname(file), vector: hit.vector });
  }
  if (misses.length > 0) {
    const faces = await extractFaces(
      vision,
      dir,
      misses.map((file) => ({ file, scale: 1 })),
      "detect + align + embed",
      onProgress,
    );
    for (const f of faces) {
      if (!f.vector) {
        skipped.push(`${f.file}: no face found`);
        continue;
      }
      cache.set(path.join(dir, f.file), { vector: f.vector, detected: true, gateReasons: f.gateReasons });
      if (f.gateReasons.length > 0)
        skipped.push(`${f.file}: below the quality gate (${f.gateReasons.join(", ")})`);
      else samples.push({ identity: path.dirname(f.file), vector: f.vector });
    }
    cache.save();
  }
  return {
    source: `folder ${path.resolve(dir)}`,
    samples,
    skipped,
    identities: new Set(samples.map((s) => s.identity)).size,
    images: samples.length,
  };
}

/** What `storeData` reads: the watchlist and the alerts, behind the interfaces both stores implement. */
export type TrainingStore = Pick<
  WatchlistStore,
  "listPeople" | "listFaces" | "listFaceVectors" | "listExclusions"
> &
  Pick<AlertStore, "listAlerts" | "alertVectors">;

/**
 * The site's own confirmed identities from the store (embedded or Qdrant): every enrolled photo's vector (enrolled
 * people, including promoted unknown identities, which become watchlist people) and every acknowledged alert's
 * face, labelled with the alerted person, unless it was made an exclusion ("this is not X", named by
 * `alertExclusionId`). Only vectors of the base model are taken: a head is trained on one model's vectors.
 * `where` names the store in the result's `source`.
 */
export async function storeData(
  store: TrainingStore,
  baseModelId: string,
  where: string,
): Promise<TrainingData> {
  const samples: TrainSample[] = [];
  const skipped: string[] = [];
  const people = await store.listPeople();
  const enrolled = new Set(people.map((p) => p.id));
  const taken = new Map<string, number>();
  for (const f of await store.listFaceVectors(baseModelId)) {
    // A face written while its person was being removed (Qdrant has no cascade): nobody's, and never matched.
    if (!enrolled.has(f.personId)) {
      skipped.push(`photo ${f.faceId}: its person ${f.personId} is no longer enrolled`);
      continue;
    }
    samples.push({ identity: f.personId, vector: f.vector });
    taken.set(f.personId, (taken.get(f.personId) ?? 0) + 1);
  }
  // Only people with photos of another model are listed again, to name those photos.
  for (const p of people.filter((p) => p.faces > (taken.get(p.id) ?? 0)))
    for (const photo of await store.listFaces(p.id))
      if (photo.modelId !== baseModelId)
        skipped.push(
          `photo ${photo.faceId}: a vector of ${photo.modelId}, not of the base model ${baseModelId}`,
        );

  const exclusions = new Map<string, Set<string>>();
  const excludedFor = async (personId: string) => {
    let ids = exclusions.get(personId);
    if (!ids) {
      ids = new Set((await store.listExclusions(personId)).map((e) => e.id));
      exclusions.set(personId, ids);
    }
    return ids;
  };
  let acknowledged = 0;
  let cursor: string | undefined;
  do {
    const page = await store.listAlerts({ acknowledged: true, limit: MAX_PAGE, cursor });
    const vectors = await store.alertVectors(page.items.map((a) => a.id));
    for (const a of page.items) {
      acknowledged++;
      const vector = vectors.get(a.id);
      if ((await excludedFor(a.personId)).has(alertExclusionId(a.personId, a.id)))
        skipped.push(`alert ${a.id}: said not to be ${a.personId} (an exclusion)`);
      else if (!vector) skipped.push(`alert ${a.id}: stored without its face's vector`);
      else if (a.modelId !== baseModelId)
        skipped.push(`alert ${a.id}: a vector of ${a.modelId}, not of the base model ${baseModelId}`);
      else samples.push({ identity: a.personId, vector });
    }
    cursor = page.nextCursor ?? undefined;
  } while (cursor);

  const photos = people.reduce((n, p) => n + p.faces, 0);
  if (photos === 0 && acknowledged === 0)
    throw new TrainingDataError(
      `${where} has no enrolled photos or acknowledged alerts: enrol people first (vigil enroll)`,
    );
  return {
    source: `${where}: ${photos} enrolled photo(s), ${acknowledged} acknowledged alert(s)`,
    samples,
    skipped,
    identities: new Set(samples.map((s) => s.identity)).size,
    images: samples.length,
  };
}

/** The configured store's training data; an embedded store that was never written is an error, not an empty set. */
export async function configuredStoreData(config: Config, baseModelId: string): Promise<TrainingData> {
  const embedded = config.store.kind === "embedded";
  if (embedded && !existsSync(storePath(config)))
    throw new TrainingDataError(`no store at ${storePath(config)}: enrol people first (vigil enroll)`);
  const where = embedded
    ? `store ${storePath(config)}`
    : `Qdrant store ${[config.store.qdrantUrl ?? ""].flat().join(", ")} (collections ${config.store.qdrantPrefix}_*)`;
  const store = openStore(config);
  try {
    return await storeData(store, baseModelId, where);
  } finally {
    store.close();
  }
}
