import type { AlertRecord } from "../../lib/store/alert-store.ts";
import type { Logger } from "../../lib/telemetry/log.ts";
import type { WatchlistService } from "../../lib/watchlist/service.ts";

export const alertCropUrl = (a: { id: string }) => `/v1/alerts/${encodeURIComponent(a.id)}/crop`;
export const clipUrl = (kind: "alerts" | "sightings", id: string) =>
  `/v1/${kind}/${encodeURIComponent(id)}/clip`;
/** Whether a camera's records get clips (`cameraRecorded` of the config); none by default. */
export type CameraRecorded = (cameraId: string) => boolean;
const noneRecorded: CameraRecorded = () => false;

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

/** An alert's two faces: the one the camera saw, and the enrolled one it matched (null: no photo with a crop). */
export interface AlertFaceUrls {
  cropUrl: string;
  personCropUrl: string | null;
  /** Where the video around it is (or will be, a few seconds after it); null when its camera is not recorded. */
  clipUrl: string | null;
}

type AlertFaces = Pick<AlertRecord, "id" | "personId" | "matchedFaceId" | "cameraId">;
export type PhotoShown = Pick<WatchlistService, "photoToShow">;
/** Shows no enrolled photo: for callers who may not see them, or where no watchlist is at hand. */
export const noPhotoShown: PhotoShown = { photoToShow: async () => undefined };

/**
 * The one place alerts' face URLs are made, for the alert routes and the webhook and MQTT payloads alike:
 * relative paths, or absolute under `base` (`api.mqtt.publicUrl`, the API's external address). The enrolled face
 * is the one the alert matched, or the person's first photo with a crop for alerts that do not name it
 * (`WatchlistService.photoToShow`). Make one per request or delivery: it remembers each photo it looked up, so a
 * page of one person's alerts reads their photos once, and a long-lived one would not see photos change.
 */
export function alertFaceUrls(watchlist: PhotoShown, base?: string, recorded: CameraRecorded = noneRecorded) {
  const absolute = (p: string) => (base ? underBase(p, base) : p);
  const shown = new Map<string, Promise<string | null>>();
  return async (a: AlertFaces): Promise<AlertFaceUrls> => {
    const key = `${a.personId}\n${a.matchedFaceId ?? ""}`;
    let person = shown.get(key);
    if (!person) {
      person = watchlist.photoToShow(a.personId, a.matchedFaceId).then((p) => {
        const url = p ? photoCropUrl(p) : null;
        return url === null ? null : absolute(url);
      });
      shown.set(key, person);
    }
    return {
      cropUrl: absolute(alertCropUrl(a)),
      personCropUrl: await person,
      clipUrl: recorded(a.cameraId) ? absolute(clipUrl("alerts", a.id)) : null,
    };
  };
}

/**
 * `/v1/…` under the API's external address, keeping any path the address has (an API behind an ingress at
 * `https://host/vigil/` is reached at `https://host/vigil/v1/…`; `new URL("/v1/…", base)` would drop `/vigil`).
 */
export function underBase(p: string, base: string): string {
  return new URL(p.replace(/^\/+/, ""), base.endsWith("/") ? base : `${base}/`).toString();
}

/**
 * For a webhook or MQTT payload: as `alertFaceUrls`, but a watchlist that cannot be read (or none given) leaves
 * `personCropUrl` null rather than holding the alert back; the face seen is always there.
 */
export async function deliveredFaceUrls(
  watchlist: PhotoShown | undefined,
  base: string | undefined,
  alert: AlertFaces,
  log?: Logger,
  recorded: CameraRecorded = noneRecorded,
): Promise<AlertFaceUrls> {
  try {
    return await alertFaceUrls(watchlist ?? noPhotoShown, base, recorded)(alert);
  } catch (err) {
    log?.warn({ err, alertId: alert.id }, "alerts: enrolled photo not looked up; sent without personCropUrl");
    return alertFaceUrls(noPhotoShown, base, recorded)(alert);
  }
}
