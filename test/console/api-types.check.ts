/**
 * Type-level check, run by `tsc` (npm test's type-check): every shape the console reads (web/src/types.ts, written
 * out so the browser bundle carries no zod) is one the API's zod schemas actually produce. A field renamed or
 * retyped on the server fails the type-check here rather than in an operator's browser.
 */
import type { z } from "zod";
import type { Me } from "../../services/api/console.ts";
import type { PromoteResult } from "../../services/api/routes/unknowns.ts";
import type * as Api from "../../services/api/schemas.ts";
import type * as Web from "../../web/src/types.ts";

type Out<T extends z.ZodType> = z.output<T>;
/** `true` when everything the console expects of `Web` is in what the API sends (`Server`). */
type Reads<Server, WebShape> = [Server] extends [WebShape] ? true : false;

export const checks: Record<string, true> = {
  camera: true as Reads<Out<typeof Api.Camera>, Web.Camera>,
  alert: true as Reads<Out<typeof Api.Alert>, Web.Alert>,
  sighting: true as Reads<Out<typeof Api.Sighting>, Web.Sighting>,
  search: true as Reads<Out<typeof Api.SearchResult>, Web.SearchResult>,
  visit: true as Reads<Out<typeof Api.Visit>, Web.Visit>,
  timeline: true as Reads<Out<typeof Api.Timeline>, Web.Timeline>,
  person: true as Reads<Out<typeof Api.Person>, Web.Person>,
  photo: true as Reads<Out<typeof Api.Photo>, Web.Photo>,
  exclusion: true as Reads<Out<typeof Api.Exclusion>, Web.Exclusion>,
  enrol: true as Reads<Out<typeof Api.EnrolResult>, Web.EnrolResult>,
  watchlist: true as Reads<Out<typeof Api.Watchlist>, Web.Watchlist>,
  audit: true as Reads<Out<typeof Api.AuditEntry>, Web.AuditEntry>,
  unknown: true as Reads<Out<typeof Api.UnknownIdentity>, Web.Unknown>,
  unknownPage: true as Reads<Out<typeof Api.UnknownPage>, Web.Page<Web.Unknown>>,
  promote: true as Reads<Out<typeof PromoteResult>, Web.PromoteResult>,
  me: true as Reads<Out<typeof Me>, Web.Me>,
};
