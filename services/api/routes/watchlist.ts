import type { FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { PhotoOutcome } from "../../../lib/watchlist/enrol.ts";
import { NotFoundError } from "../../../lib/store/errors.ts";
import type { ApiContext, ZodApp } from "../context.ts";
import {
  Binary,
  EnrolResult,
  ErrorBody,
  Exclusion,
  Person,
  PersonDetails,
  PhotoOutcome as PhotoOutcomeSchema,
  Watchlist,
} from "../schemas.ts";
import { photoSummary, readPhotoForm, type CheckedPhoto } from "../upload.ts";
import { audit, defined, errors, photoOut, uploadErrors } from "./common.ts";

const PersonId = z.object({ id: z.string().min(1).max(200) });
const EnrolFields = z.object({
  id: z.string().min(1).max(200).describe("the person's id (1–200 printable characters)"),
  name: z.string().min(1).max(200).optional().describe("display name; default: the current one, or the id"),
  watchlist: z.string().min(1).max(200).optional().describe("default: the current one, or `default`"),
});
const EnrolRefused = ErrorBody.extend({ photos: z.array(PhotoOutcomeSchema).optional() });
const NoteField = z.object({ note: z.string().max(2000).optional() });

const outcomeOut = (o: PhotoOutcome) => ({ file: o.file, ok: o.ok, reason: o.reason, faceId: o.faceId });

/** Watchlists, people and their photos, exclusions ("this is not X") and per-watchlist thresholds. */
export function watchlistRoutes(app: ZodApp, ctx: ApiContext) {
  const wl = ctx.watchlist;
  const watchlistOut = (w: { id: string; threshold: number | undefined; people: number }) => ({
    ...w,
    threshold: w.threshold ?? null,
  });

  /** Enrols and answers: 422 (nothing stored for a new person) when photos were given and none was taken. */
  const enrol = async (
    request: FastifyRequest,
    reply: FastifyReply,
    person: { id: string; name?: string; watchlistId?: string },
    photos: CheckedPhoto[],
  ) => {
    const existed = (await ctx.store.getPerson(person.id)) !== undefined;
    audit(
      request,
      person.id,
      defined({ name: person.name, watchlist: person.watchlistId, photos: photos.map(photoSummary) }),
    );
    const result = await wl.enrol(
      person,
      photos.map((p) => ({ name: p.name, bytes: p.bytes })),
    );
    const outcomes = result.outcomes.map(outcomeOut);
    request.auditInfo!.summary!.enrolled = outcomes.filter((o) => o.ok).length;
    if (photos.length > 0 && !outcomes.some((o) => o.ok))
      return reply.code(422).send({
        error: "unprocessable",
        message: `no photo was enrolled: ${outcomes.map((o) => `${o.file}: ${o.reason}`).join("; ")}`,
        photos: outcomes,
      });
    return reply.code(existed ? 200 : 201).send({ person: result.person ?? null, photos: outcomes });
  };

  app.get(
    "/v1/watchlists",
    {
      config: { role: "operator" },
      schema: {
        summary: "Watchlists with their head count and threshold",
        tags: ["watchlists"],
        response: { 200: z.object({ items: z.array(Watchlist) }), ...errors },
      },
    },
    async () => ({ items: (await wl.listWatchlists()).map(watchlistOut) }),
  );

  app.get(
    "/v1/watchlists/:id",
    {
      config: { role: "operator" },
      schema: {
        summary: "One watchlist",
        tags: ["watchlists"],
        params: PersonId,
        response: { 200: Watchlist, ...errors },
      },
    },
    async (request) => watchlistOut(await wl.watchlist(request.params.id)),
  );

  app.put(
    "/v1/watchlists/:id/threshold",
    {
      config: { role: "admin", audit: "watchlist.threshold" },
      schema: {
        summary:
          "Override the watchlist's match threshold (a cosine similarity), or null for the calibrated one",
        tags: ["watchlists"],
        params: PersonId,
        body: z.object({ threshold: z.number().min(-1).max(1).nullable() }),
        response: { 200: Watchlist, ...errors },
      },
    },
    async (request) => {
      audit(request, request.params.id, { threshold: request.body.threshold });
      return watchlistOut(await wl.setThreshold(request.params.id, request.body.threshold));
    },
  );

  app.get(
    "/v1/people",
    {
      config: { role: "operator" },
      schema: {
        summary: "People on the watchlists",
        tags: ["people"],
        querystring: z.object({ watchlist: z.string().min(1).optional() }),
        response: { 200: z.object({ items: z.array(Person) }), ...errors },
      },
    },
    async (request) => {
      const people = await wl.listPeople();
      const w = request.query.watchlist;
      return { items: w ? people.filter((p) => p.watchlistId === w) : people };
    },
  );

  app.post(
    "/v1/people",
    {
      config: {
        role: "admin",
        audit: "person.enrol",
        multipart: EnrolFields.extend({
          photo: z.array(Binary).describe("one or more photos, one face each"),
        }),
      },
      schema: {
        summary:
          "Enrol a person from photos (or add photos to them): each photo is enrolled or refused with the reason",
        description:
          "multipart/form-data: `id`, optional `name` and `watchlist`, and `photo` parts. A photo with no face, " +
          "several faces or a face below the quality gate is refused with the reason; when none is taken the answer " +
          "is 422 and nothing is stored for a new person. A file that is too large, not an image, truncated, or " +
          "over the pixel limit refuses the whole request (413 / 415 / 422) before anything is stored.",
        tags: ["people"],
        response: { 200: EnrolResult, 201: EnrolResult, ...uploadErrors, 422: EnrolRefused },
      },
    },
    async (request, reply) => {
      audit(request, null);
      const { fields, photos } = await readPhotoForm(request, EnrolFields, ctx.limits, { minPhotos: 0 });
      return enrol(
        request,
        reply,
        { id: fields.id, name: fields.name, watchlistId: fields.watchlist },
        photos,
      );
    },
  );

  app.get(
    "/v1/people/:id",
    {
      config: { role: "operator" },
      schema: {
        summary: "A person with their enrolled photos and exclusions",
        tags: ["people"],
        params: PersonId,
        response: { 200: PersonDetails, ...errors },
      },
    },
    async (request) => {
      const person = await wl.person(request.params.id);
      return { ...person, photos: person.photos.map(photoOut) };
    },
  );

  app.put(
    "/v1/people/:id",
    {
      config: { role: "admin", audit: "person.update" },
      schema: {
        summary: "Add a person without photos, or change their name or watchlist",
        tags: ["people"],
        params: PersonId,
        body: z.object({
          name: z.string().min(1).max(200).optional(),
          watchlistId: z.string().min(1).max(200).optional(),
        }),
        response: { 200: EnrolResult, 201: EnrolResult, ...errors },
      },
    },
    async (request, reply) => enrol(request, reply, { id: request.params.id, ...request.body }, []),
  );

  app.delete(
    "/v1/people/:id",
    {
      config: { role: "admin", audit: "person.remove" },
      schema: {
        summary: "Remove a person, their photos and exclusions",
        tags: ["people"],
        params: PersonId,
        response: { 204: z.undefined(), ...errors },
      },
    },
    async (request, reply) => {
      audit(request, request.params.id);
      await wl.removePerson(request.params.id);
      return reply.code(204).send();
    },
  );

  app.post(
    "/v1/people/:id/photos",
    {
      config: { role: "admin", audit: "person.enrol", multipart: z.object({ photo: z.array(Binary) }) },
      schema: {
        summary: "Add photos to someone already on the watchlist",
        tags: ["people"],
        params: PersonId,
        response: { 200: EnrolResult, ...uploadErrors, 422: EnrolRefused },
      },
    },
    async (request, reply) => {
      audit(request, request.params.id);
      const { photos } = await readPhotoForm(request, z.object({}), ctx.limits);
      if (!(await ctx.store.getPerson(request.params.id)))
        throw new NotFoundError(`no person ${request.params.id} on the watchlist`);
      return enrol(request, reply, { id: request.params.id }, photos);
    },
  );

  app.delete(
    "/v1/people/:id/photos/:file",
    {
      config: { role: "admin", audit: "person.photo.remove" },
      schema: {
        summary: "Remove one enrolled photo (by its file name)",
        tags: ["people"],
        params: PersonId.extend({ file: z.string().min(1).max(400) }),
        response: { 204: z.undefined(), ...errors },
      },
    },
    async (request, reply) => {
      const faceId = `${request.params.id}:${request.params.file}`;
      audit(request, faceId);
      await wl.removePhoto(faceId);
      return reply.code(204).send();
    },
  );

  app.get(
    "/v1/people/:id/photos/:file/crop",
    {
      config: { role: "operator", audit: "export.photo-crop" },
      schema: {
        summary: "The aligned face kept from an enrolled photo (by its file name), as JPEG",
        description:
          "The photo's `cropUrl` in GET /v1/people/{id}. 404 when the person has no such photo, or it was enrolled " +
          "before crops were kept.",
        tags: ["people"],
        params: PersonId.extend({ file: z.string().min(1).max(400) }),
        produces: ["image/jpeg"],
      },
    },
    async (request, reply) => {
      const faceId = `${request.params.id}:${request.params.file}`;
      audit(request, faceId);
      const crop = await wl.photoCrop(request.params.id, faceId);
      // Not cached as long as a sighting's: the same file name enrolled again replaces the photo.
      return reply.type("image/jpeg").header("cache-control", "private, no-cache").send(Buffer.from(crop));
    },
  );

  app.get(
    "/v1/people/:id/exclusions",
    {
      config: { role: "operator" },
      schema: {
        summary: 'The person\'s exclusions ("this is not them")',
        tags: ["exclusions"],
        params: PersonId,
        response: { 200: z.object({ items: z.array(Exclusion) }), ...errors },
      },
    },
    async (request) => ({ items: await wl.listExclusions(request.params.id) }),
  );

  app.post(
    "/v1/people/:id/exclusions",
    {
      config: { role: "admin", audit: "exclusion.add", multipart: NoteField.extend({ photo: Binary }) },
      schema: {
        summary: '"This is not them", from a photo of the face that was mistaken for the person',
        tags: ["exclusions"],
        params: PersonId,
        response: { 201: Exclusion, ...uploadErrors },
      },
    },
    async (request, reply) => {
      audit(request, request.params.id);
      const { fields, photos } = await readPhotoForm(request, NoteField, ctx.limits, { maxPhotos: 1 });
      const photo = photos[0]!;
      audit(request, request.params.id, defined({ photo: photoSummary(photo), note: fields.note }));
      const exclusion = await wl.excludeFromPhoto(
        request.params.id,
        { name: photo.name, bytes: photo.bytes },
        fields.note,
      );
      return reply.code(201).send(exclusion);
    },
  );

  app.post(
    "/v1/exclusions",
    {
      config: { role: "admin", audit: "exclusion.add" },
      schema: {
        summary:
          '"This is not them", from a false alert or a sighting (the person defaults to whom it matched)',
        tags: ["exclusions"],
        body: z
          .object({
            alertId: z.string().min(1).optional(),
            sightingId: z.string().min(1).optional(),
            personId: z.string().min(1).optional(),
            note: z.string().max(2000).optional(),
          })
          .refine((b) => (b.alertId === undefined) !== (b.sightingId === undefined), {
            message: "give exactly one of alertId or sightingId",
          }),
        response: { 201: Exclusion, ...errors },
      },
    },
    async (request, reply) => {
      const b = request.body;
      audit(
        request,
        b.personId ?? null,
        defined({ alertId: b.alertId, sightingId: b.sightingId, note: b.note }),
      );
      const options = { personId: b.personId, note: b.note };
      const exclusion = b.alertId
        ? await wl.excludeFromAlert(b.alertId, options)
        : await wl.excludeFromSighting(b.sightingId!, options);
      request.auditInfo!.target = exclusion.personId;
      return reply.code(201).send(exclusion);
    },
  );

  app.delete(
    "/v1/people/:id/exclusions/:exclusionId",
    {
      config: { role: "admin", audit: "exclusion.remove" },
      schema: {
        summary: "Remove an exclusion",
        tags: ["exclusions"],
        params: PersonId.extend({ exclusionId: z.string().min(1).max(1000) }),
        response: { 204: z.undefined(), ...errors },
      },
    },
    async (request, reply) => {
      audit(request, request.params.id, { exclusionId: request.params.exclusionId });
      await wl.removeExclusion(request.params.id, request.params.exclusionId);
      return reply.code(204).send();
    },
  );
}
