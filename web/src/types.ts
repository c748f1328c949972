/**
 * The API's shapes as the console reads them (services/api/schemas.ts and /openapi.json are the reference).
 * Written out rather than imported: the browser bundle must not pull in the server's zod schemas. The type-check
 * holds them to the schemas (test/console/api-types.check.ts).
 */

export type Role = "viewer" | "operator" | "admin";

export interface Me {
  keyId: string;
  name: string;
  role: Role;
}

export interface Camera {
  id: string;
  state: "unknown" | "connecting" | "live" | "stalled" | "backoff" | "error" | "ended";
  ts: number | null;
  lastError: string | null;
  framesIn: number;
  framesDropped: number;
  framesUndecodable: number;
  reconnects: number;
  configured: boolean;
  snapshotTs: number | null;
  recording: { on: boolean; reason: string | null } | null;
}

export interface Alert {
  id: string;
  watchlistId: string;
  personId: string;
  personName: string;
  cameraId: string;
  ts: number;
  score: number;
  threshold: number;
  modelId: string;
  faceId: string;
  /** Where the face was, in the frame the camera's faces are found in (`vigil-clip-frame` of its clip). */
  box: { x: number; y: number; width: number; height: number };
  acknowledged: { by: string; ts: number; note: string | null } | null;
  cropUrl: string;
  /** The enrolled face that matched (`<person>:<file>`); null for older alerts and for a viewer key. */
  matchedFaceId: string | null;
  /**
   * The crop of the enrolled photo that matched (or the person's first with a crop, for older alerts), to show
   * beside the face seen; null: none has one, or a viewer key.
   */
  personCropUrl: string | null;
  /** The video around it; null when its camera is not recorded. */
  clipUrl: string | null;
}

export interface Sighting {
  id: string;
  trackId: string;
  cameraId: string;
  startTs: number;
  endTs: number;
  faces: number;
  modelId: string;
  match: { personId: string; name: string; score: number } | null;
  /** The best face's box, as an alert's, and its capture time; absent for sightings stored before they were kept. */
  box?: Alert["box"];
  boxTs?: number;
  cropUrl: string;
}

export interface SearchResult {
  modelId: string;
  threshold: number;
  hits: { sighting: Sighting; score: number; samePerson: boolean }[];
  nextOffset: number | null;
}

export interface Visit {
  cameraId: string;
  startTs: number;
  endTs: number;
  sightings: string[];
  faces: number;
  score: number | null;
}

export interface Timeline {
  visits: Visit[];
  sightings: number;
  threshold?: number;
}

export interface Person {
  id: string;
  name: string;
  watchlistId: string;
  faces: number;
}

export interface Photo {
  faceId: string;
  personId: string;
  modelId: string;
  source: string;
  /** The aligned face kept from the photo; null for photos enrolled before crops were kept. */
  cropUrl: string | null;
}

export interface Exclusion {
  id: string;
  personId: string;
  modelId: string;
  note: string;
}

export interface PersonDetails extends Person {
  photos: Photo[];
  exclusions: Exclusion[];
}

export interface PhotoOutcome {
  file: string;
  ok: boolean;
  reason?: string;
  faceId?: string;
}

export interface EnrolResult {
  person: Person | null;
  photos: PhotoOutcome[];
}

export interface Watchlist {
  id: string;
  threshold: number | null;
  people: number;
}

export interface AuditEntry {
  seq: number;
  ts: number;
  actor: { keyId: string | null; name: string; role: string | null };
  action: string;
  target: string | null;
  outcome: "ok" | "denied" | "failed";
  status: number | null;
  summary: Record<string, unknown>;
  ip: string | null;
  hash: string;
}

export interface Unknown {
  id: string;
  name: string | null;
  firstSeen: number;
  lastSeen: number;
  count: number;
  cameras: string[];
  bestSightings: string[];
  /** The watchlist person it was promoted to; it stays listed, marked. */
  promotedTo: string | null;
}

export interface PromoteResult {
  personId: string;
  /** Sightings whose crops were enrolled as the person's photos. */
  enrolled: string[];
  rejected: { sightingId: string; reason: string }[];
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}
