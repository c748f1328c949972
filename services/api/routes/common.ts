import type { FastifyRequest } from "fastify";
import type { AlertRecord } from "../../../lib/store/alert-store.ts";
import { roleRank, type Role } from "../../../lib/store/key-store.ts";
import type { WatchlistService } from "../../../lib/watchlist/service.ts";
import type { SightingRecord } from "../../../lib/store/sighting-store.ts";
import { ErrorBody } from "../schemas.ts";

/** The failures every authenticated route may answer with, for the OpenAPI document. */
export const errors = {
  400: ErrorBody,
  401: ErrorBody,
  403: ErrorBody,
  404: ErrorBody,
  429: ErrorBody,
} as const;

export const uploadErrors = { ...errors, 413: ErrorBody, 415: ErrorBody, 422: ErrorBody } as const;

export const alertCropUrl = (a: { id: string }) => `/v1/alerts/${encodeURIComponent(a.id)}/crop`;
export const sightingCropUrl = (s: { id: string }) => `/v1/sightings/${encodeURIComponent(s.id)}/crop`;

/**
 * An enrolled photo's crop: `/v1/people/{id}/photos/{file}/crop`, the file as in the photo's DELETE route (the
 * face id is `<person>:<file>`). Null when the photo has no crop, or an id no route can address.
 */
export function photoCropUrl(p: { personId: string; faceId: string; hasCrop: boolean }): string | null {
  const prefix = `${p.personId}:`;
  if (!p.hasCrop || !p.faceId.startsWith(prefix) || p.faceId.length === prefix.length) return null;
  const file = p.faceId.slice(prefix.length);
  return `/v1/people/${encodeURIComponent(p.personId)}/photos/${encodeURIComponent(file)}/crop`;
}

export const photoOut = <P extends { personId: string; faceId: string; hasCrop: boolean }>({
  hasCrop,
  ...p
}: P) => ({ ...p, cropUrl: photoCropUrl({ ...p, hasCrop }) });

/**
 * Turns stored alerts into what the API sends: each with its crop URL and `personCropUrl`, the crop of the
 * person's enrolled face to show beside it (looked up once per person). That crop is an operator's to read, so
 * callers below operator get null rather than the file name of a photo they may not see.
 */
export function alertsOut(watchlist: Pick<WatchlistService, "photoToShow">, role: Role | undefined) {
  const mayRead = role !== undefined && roleRank(role) >= roleRank("operator");
  const shown = new Map<string, Promise<string | null>>();
  const personCropUrl = (personId: string) => {
    if (!mayRead) return Promise.resolve(null);
    let url = shown.get(personId);
    if (!url) {
      url = watchlist.photoToShow(personId).then((p) => (p ? photoCropUrl(p) : null));
      shown.set(personId, url);
    }
    return url;
  };
  return async (a: AlertRecord) => ({
    ...a,
    cropUrl: alertCropUrl(a),
    personCropUrl: await personCropUrl(a.personId),
  });
}
export const sightingOut = (s: SightingRecord) => ({
  ...s,
  unknownId: s.unknownId ?? null,
  cropUrl: sightingCropUrl(s),
});

/** What the audit entry of this request says; called before the work, so a failure is recorded the same. */
export function audit(request: FastifyRequest, target: string | null, summary: Record<string, unknown> = {}) {
  request.auditInfo = { target, summary };
}

export { defined } from "../../../lib/api/audit.ts";
