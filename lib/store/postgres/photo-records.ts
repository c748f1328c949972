import type { EnrolledPhoto, ExclusionInfo } from "../watchlist-store.ts";
import type { RecordsPool } from "./records-pool.ts";

/**
 * Enrolled photos and exclusions as records (where a photo came from, whether its crop was kept; an exclusion's
 * note), keyed by the ids their vectors carry in Qdrant. A person's removal takes both with it (the tables cascade
 * from `people`).
 */
export interface PhotoRecords {
  addPhoto(photo: EnrolledPhoto): Promise<void>;
  photo(faceId: string): Promise<EnrolledPhoto | undefined>;
  photosOf(personId: string): Promise<EnrolledPhoto[]>;
  /** Photos per person, for the people listed (all when `personIds` is absent). */
  photoCounts(personIds?: string[]): Promise<Map<string, number>>;
  removePhoto(faceId: string): Promise<boolean>;
  addExclusion(exclusion: ExclusionInfo): Promise<void>;
  exclusionsOf(personId: string): Promise<ExclusionInfo[]>;
  removeExclusion(id: string): Promise<boolean>;
}

type PhotoRow = { face_id: string; person_id: string; model_id: string; source: string; has_crop: boolean };
const toPhoto = (r: PhotoRow): EnrolledPhoto => ({
  faceId: r.face_id,
  personId: r.person_id,
  modelId: r.model_id,
  source: r.source,
  hasCrop: r.has_crop,
});
type ExclusionRow = { id: string; person_id: string; model_id: string; note: string };
const toExclusion = (r: ExclusionRow): ExclusionInfo => ({
  id: r.id,
  personId: r.person_id,
  modelId: r.model_id,
  note: r.note,
});

export class PostgresPhotos implements PhotoRecords {
  constructor(private readonly db: RecordsPool) {}

  async addPhoto(p: EnrolledPhoto) {
    await this.db.rows(
      `INSERT INTO photos (face_id, person_id, model_id, source, has_crop) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (face_id) DO UPDATE SET person_id = excluded.person_id, model_id = excluded.model_id,
         source = excluded.source, has_crop = excluded.has_crop`,
      [p.faceId, p.personId, p.modelId, p.source, p.hasCrop],
    );
  }

  async photo(faceId: string) {
    const [row] = await this.db.rows<PhotoRow>("SELECT * FROM photos WHERE face_id = $1", [faceId]);
    return row && toPhoto(row);
  }

  async photosOf(personId: string) {
    const rows = await this.db.rows<PhotoRow>(
      'SELECT * FROM photos WHERE person_id = $1 ORDER BY face_id COLLATE "C"',
      [personId],
    );
    return rows.map(toPhoto);
  }

  async photoCounts(personIds?: string[]) {
    const rows = await this.db.rows<{ person_id: string; n: string }>(
      `SELECT person_id, count(*) AS n FROM photos ${personIds ? "WHERE person_id = ANY($1::text[])" : ""}
       GROUP BY person_id`,
      personIds ? [personIds] : [],
    );
    return new Map(rows.map((r) => [r.person_id, Number(r.n)]));
  }

  async removePhoto(faceId: string) {
    return (await this.db.rows("DELETE FROM photos WHERE face_id = $1 RETURNING 1", [faceId])).length > 0;
  }

  async addExclusion(e: ExclusionInfo) {
    await this.db.rows(
      `INSERT INTO exclusions (id, person_id, model_id, note) VALUES ($1, $2, $3, $4)
       ON CONFLICT (id) DO UPDATE SET person_id = excluded.person_id, model_id = excluded.model_id,
         note = excluded.note`,
      [e.id, e.personId, e.modelId, e.note],
    );
  }

  async exclusionsOf(personId: string) {
    const rows = await this.db.rows<ExclusionRow>(
      'SELECT * FROM exclusions WHERE person_id = $1 ORDER BY id COLLATE "C"',
      [personId],
    );
    return rows.map(toExclusion);
  }

  async removeExclusion(id: string) {
    return (await this.db.rows("DELETE FROM exclusions WHERE id = $1 RETURNING 1", [id])).length > 0;
  }
}
