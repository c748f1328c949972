import { existsSync } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { bytesToVector } from "../contracts/messages.ts";
import type { EmbeddingCache } from "../eval/embedding-cache.ts";
import { extractFaces, scanIdentities } from "../eval/faces.ts";
import type { Vision } from "../vision/inference/vision.ts";
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

/**
 * The site's own confirmed identities from the embedded store: every enrolled photo's vector (enrolled people,
 * including promoted unknown identities, which become watchlist people) and every acknowledged alert's face,
 * labelled with the alerted person, unless it was made an exclusion ("this is not X"). Only vectors of the base
 * model are taken: a head is trained on one model's vectors.
 */
export function storeData(storeFile: string, baseModelId: string): TrainingData {
  if (!existsSync(storeFile))
    throw new TrainingDataError(`no store at ${storeFile}: enrol people first (vigil enroll)`);
  const db = new Database(storeFile, { readonly: true, fileMustExist: true });
  try {
    const faces = db
      .prepare("SELECT face_id, person_id, model_id, vector FROM faces ORDER BY face_id")
      .all() as { face_id: string; person_id: string; model_id: string; vector: Buffer }[];
    const alerts = db
      .prepare(
        `SELECT a.id, a.person_id, a.model_id, a.vector FROM alerts a
         WHERE a.ack_ts IS NOT NULL AND a.vector IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM exclusions e WHERE e.id = a.person_id || ':exclusion:' || a.id)
         ORDER BY a.id`,
      )
      .all() as { id: string; person_id: string; model_id: string; vector: Buffer }[];
    const samples: TrainSample[] = [];
    const skipped: string[] = [];
    const take = (label: string, personId: string, modelId: string, bytes: Buffer) => {
      if (modelId !== baseModelId) {
        skipped.push(`${label}: a vector of ${modelId}, not of the base model ${baseModelId}`);
        return;
      }
      samples.push({ identity: personId, vector: bytesToVector(bytes) });
    };
    for (const f of faces) take(`photo ${f.face_id}`, f.person_id, f.model_id, f.vector);
    for (const a of alerts) take(`alert ${a.id}`, a.person_id, a.model_id, a.vector);
    return {
      source: `store ${path.resolve(storeFile)}: ${faces.length} enrolled photo(s), ${alerts.length} acknowledged alert(s)`,
      samples,
      skipped,
      identities: new Set(samples.map((s) => s.identity)).size,
      images: samples.length,
    };
  } finally {
    db.close();
  }
}
