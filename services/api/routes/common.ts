import type { FastifyRequest } from "fastify";
import type { AlertRecord } from "../../../lib/store/alert-store.ts";
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

export const alertOut = (a: AlertRecord) => ({ ...a, cropUrl: alertCropUrl(a) });
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
