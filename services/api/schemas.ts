import { z } from "zod";
import { parseTime } from "../../lib/history/timeline.ts";
import { MAX_PAGE } from "../../lib/store/paging.ts";
import { ROLES } from "../../lib/store/key-store.ts";

/**
 * Every request and response shape of the API, in zod: fastify validates and serializes with these, and the
 * OpenAPI document at /openapi.json is generated from them.
 */

export const ErrorBody = z
  .object({
    error: z
      .string()
      .describe("machine-readable kind: unauthorized, forbidden, not_found, invalid_request, …"),
    message: z.string(),
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .meta({ id: "Error" });

// ---- query pieces ----

export const Time = z
  .string()
  .transform((text, ctx) => {
    try {
      return parseTime(text);
    } catch (err) {
      ctx.addIssue({ code: "custom", message: (err as Error).message });
      return z.NEVER;
    }
  })
  .describe("ISO 8601 time, epoch milliseconds, or a relative 90s / 15m / 6h / 3d ago");

/** `?camera=a&camera=b` or `?camera=a,b`. */
export const IdList = z.union([z.string(), z.array(z.string())]).transform((v) =>
  (Array.isArray(v) ? v : [v])
    .flatMap((s) => s.split(","))
    .map((s) => s.trim())
    .filter(Boolean),
);

export const Limit = z.coerce.number().int().min(1).max(MAX_PAGE).default(50);
export const Cursor = z.string().min(1).max(2000).describe("`nextCursor` of the previous page");
export const BoolString = z.enum(["true", "false"]).transform((v) => v === "true");

export const Id = z.string().min(1).max(400);

// ---- shared records ----

const Box = z.object({ x: z.number(), y: z.number(), width: z.number(), height: z.number() });
const Quality = z.object({
  faceSize: z.number(),
  interOcular: z.number(),
  sharpness: z.number(),
  yawDeg: z.number(),
  pitchDeg: z.number(),
  detScore: z.number(),
});

export const Camera = z
  .object({
    id: z.string(),
    state: z.enum(["unknown", "connecting", "live", "stalled", "backoff", "error", "ended"]),
    /** Of the last status record; null until ingest has reported the camera. */
    ts: z.number().nullable(),
    lastError: z.string().nullable(),
    framesIn: z.number(),
    framesDropped: z.number(),
    framesUndecodable: z.number(),
    reconnects: z.number(),
    configured: z.boolean().describe("listed in the config file (else only known from its status records)"),
    snapshotTs: z.number().nullable().describe("capture time of the newest frame kept; null: no snapshot"),
    recording: z
      .object({ on: z.boolean(), reason: z.string().nullable() })
      .nullable()
      .describe(
        "cameras asked to record (record.keep): whether their video is being recorded for clips, and why not " +
          "(a file, a codec that cannot be copied); null for the others, or until ingest reports",
      ),
  })
  .meta({ id: "Camera" });

export const Acknowledgement = z.object({ by: z.string(), ts: z.number(), note: z.string().nullable() });

export const Alert = z
  .object({
    id: z.string(),
    watchlistId: z.string(),
    personId: z.string(),
    personName: z.string(),
    cameraId: z.string(),
    ts: z.number().describe("capture time of the face, ms since the epoch"),
    score: z.number(),
    threshold: z.number(),
    modelId: z.string(),
    faceId: z.string(),
    box: Box,
    matchedFaceId: z
      .string()
      .nullable()
      .describe(
        "the enrolled face (<person>:<file>) that matched best; null for alerts raised before it was recorded, " +
          "or for a viewer key",
      ),
    acknowledged: Acknowledgement.nullable(),
    cropUrl: z.string(),
    clipUrl: z
      .string()
      .nullable()
      .describe(
        "the video around the alert (GET it: MP4 with byte ranges), cut a few seconds after the alert; null when " +
          "its camera is not recorded (record.keep off)",
      ),
    personCropUrl: z
      .string()
      .nullable()
      .describe(
        "the crop of the enrolled face to show beside the alert: the one that matched (matchedFaceId) while it is " +
          "enrolled with a crop, else the person's first photo that has one; null when none has a crop, or for a " +
          "viewer key",
      ),
  })
  .meta({ id: "Alert" });

export const AlertPage = z.object({ items: z.array(Alert), nextCursor: z.string().nullable() });

export const Sighting = z
  .object({
    id: z.string(),
    trackId: z.string(),
    cameraId: z.string(),
    startTs: z.number(),
    endTs: z.number(),
    faces: z.number(),
    modelId: z.string(),
    quality: Quality,
    match: z.object({ personId: z.string(), name: z.string(), score: z.number() }).nullable(),
    unknownId: z.string().nullable().describe("the unknown identity a sighting that matched nobody joined"),
    box: Box.optional().describe(
      "where the best face (the crop's) was, in frame pixels (`vigil-clip-frame` of the clip); absent for " +
        "sightings stored before it was kept",
    ),
    boxTs: z
      .number()
      .optional()
      .describe("when the best face was captured (ms): where to draw `box` in the clip"),
    cropUrl: z.string(),
    clipUrl: z
      .string()
      .nullable()
      .describe("the video of the sighting, where its camera keeps sightings' clips (record.keep sightings)"),
  })
  .meta({ id: "Sighting" });

export const SightingPage = z.object({ items: z.array(Sighting), nextCursor: z.string().nullable() });

export const SearchResult = z.object({
  modelId: z.string(),
  threshold: z
    .number()
    .describe("hits at or above it are the same person at the calibrated false-accept rate"),
  hits: z.array(z.object({ sighting: Sighting, score: z.number(), samePerson: z.boolean() })),
  nextOffset: z.number().nullable(),
});

export const Visit = z.object({
  cameraId: z.string(),
  startTs: z.number(),
  endTs: z.number(),
  sightings: z.array(z.string()),
  faces: z.number(),
  score: z.number().nullable(),
});

export const Timeline = z.object({
  visits: z.array(Visit),
  sightings: z.number(),
  threshold: z.number().optional(),
});

export const UnknownIdentity = z
  .object({
    id: z.string(),
    name: z.string().nullable(),
    modelId: z.string(),
    firstSeen: z.number().describe("start of its earliest sighting, ms since the epoch"),
    lastSeen: z.number().describe("end of its latest sighting, ms since the epoch"),
    count: z.number().describe("sightings assigned to it"),
    cameras: z.array(z.string()),
    bestSightings: z
      .array(z.string())
      .describe("its best sightings, best first: their crops (/v1/sightings/{id}/crop) are its photos"),
    promotedTo: z.string().nullable().describe("the watchlist person it was promoted to"),
  })
  .meta({ id: "UnknownIdentity" });

export const UnknownPage = z.object({ items: z.array(UnknownIdentity), nextCursor: z.string().nullable() });

export const Person = z
  .object({ id: z.string(), name: z.string(), watchlistId: z.string(), faces: z.number() })
  .meta({ id: "Person" });

export const Photo = z.object({
  faceId: z.string(),
  personId: z.string(),
  modelId: z.string(),
  source: z.string(),
  cropUrl: z
    .string()
    .nullable()
    .describe(
      "the aligned face kept from the photo, as JPEG; null for photos enrolled before crops were kept",
    ),
});
export const Exclusion = z
  .object({ id: z.string(), personId: z.string(), modelId: z.string(), note: z.string() })
  .meta({ id: "Exclusion" });

export const PersonDetails = Person.extend({ photos: z.array(Photo), exclusions: z.array(Exclusion) });

export const PhotoOutcome = z.object({
  file: z.string(),
  ok: z.boolean(),
  reason: z.string().optional().describe("why the photo was not enrolled"),
  faceId: z.string().optional(),
});

export const EnrolResult = z.object({ person: Person.nullable(), photos: z.array(PhotoOutcome) });

export const Watchlist = z
  .object({
    id: z.string(),
    threshold: z.number().nullable().describe("null: the model's calibrated threshold applies"),
    people: z.number(),
  })
  .meta({ id: "Watchlist" });

export const ApiKey = z
  .object({
    id: z.string(),
    name: z.string(),
    role: z.enum(ROLES),
    createdTs: z.number(),
    revokedTs: z.number().nullable(),
    lastUsedTs: z.number().nullable(),
    rateLimitPerMinute: z.number().nullable(),
  })
  .meta({ id: "ApiKey" });

export const AuditEntry = z
  .object({
    seq: z.number(),
    ts: z.number(),
    actor: z.object({ keyId: z.string().nullable(), name: z.string(), role: z.string().nullable() }),
    action: z.string(),
    target: z.string().nullable(),
    outcome: z.enum(["ok", "denied", "failed"]),
    status: z.number().nullable(),
    summary: z.record(z.string(), z.unknown()),
    ip: z.string().nullable(),
    hash: z.string(),
  })
  .meta({ id: "AuditEntry" });

export const WebhookOut = z
  .object({
    id: z.string(),
    url: z.string(),
    watchlists: z.array(z.string()).nullable(),
    description: z.string(),
    createdTs: z.number(),
  })
  .meta({ id: "Webhook" });

export const Delivery = z
  .object({
    id: z.string(),
    webhookId: z.string(),
    alertId: z.string(),
    state: z.enum(["pending", "delivered", "dead"]),
    attempts: z.number(),
    lastStatus: z.number().nullable(),
    lastError: z.string().nullable(),
    createdTs: z.number(),
    updatedTs: z.number(),
    nextAttemptTs: z.number().nullable(),
  })
  .meta({ id: "WebhookDelivery" });

/** An uploaded file in a multipart body, for the OpenAPI document only (files are read from the stream). */
export const Binary = z.string().meta({ format: "binary" });
