import type { FastifyRequest } from "fastify";
import type { AlertRecord } from "../../../lib/store/alert-store.ts";
import { roleRank, type Role } from "../../../lib/store/key-store.ts";
import type { SightingRecord } from "../../../lib/store/sighting-store.ts";
import {
  alertFaceUrls,
  clipUrl,
  noPhotoShown,
  photoCropUrl,
  type CameraRecorded,
  type PhotoShown,
} from "../alert-links.ts";
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

export const sightingCropUrl = (s: { id: string }) => `/v1/sightings/${encodeURIComponent(s.id)}/crop`;
export const photoOut = <P extends { personId: string; faceId: string; hasCrop: boolean }>({
  hasCrop,
  ...p
}: P) => ({ ...p, cropUrl: photoCropUrl({ ...p, hasCrop }) });

/**
 * Turns stored alerts into what the API sends: each with both faces' URLs (alert-links.ts, shared with webhooks
 * and MQTT), `personCropUrl` being the enrolled face the alert matched. That photo is an operator's to read, so
 * callers below operator get null for it and for `matchedFaceId` rather than the file name of a photo they may
 * not see.
 */
export function alertsOut(watchlist: PhotoShown, role: Role | undefined, recorded?: CameraRecorded) {
  const mayRead = role !== undefined && roleRank(role) >= roleRank("operator");
  const urls = alertFaceUrls(mayRead ? watchlist : noPhotoShown, undefined, recorded);
  return async (a: AlertRecord) => ({
    ...a,
    ...(mayRead ? {} : { matchedFaceId: null }),
    ...(await urls(a)),
  });
}

/** A stored sighting as the API sends it; `clipUrl` where its camera keeps sightings' clips. */
export const sightingOut = (s: SightingRecord, keepsSightings: CameraRecorded = () => false) => ({
  ...s,
  unknownId: s.unknownId ?? null,
  cropUrl: sightingCropUrl(s),
  clipUrl: keepsSightings(s.cameraId) ? clipUrl("sightings", s.id) : null,
});

/** What the audit entry of this request says; called before the work, so a failure is recorded the same. */
export function audit(request: FastifyRequest, target: string | null, summary: Record<string, unknown> = {}) {
  request.auditInfo = { target, summary };
}

export { defined } from "../../../lib/api/audit.ts";
