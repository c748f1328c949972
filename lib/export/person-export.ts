import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { centroidOf } from "../identities/clusterer.ts";
import { isUnknownId, sightingsOfUnknown } from "../identities/identity.ts";
import { selfAndChildrenCpuSeconds } from "../media/proc-stats.ts";
import { redactVideo, type RedactResult } from "../media/redact.ts";
import type { AlertStore } from "../store/alert-store.ts";
import type { ClipInfo, ClipStore } from "../store/clip-store.ts";
import { InvalidInputError, NotFoundError } from "../store/errors.ts";
import type { IdentityStore } from "../store/identity-store.ts";
import type { SightingRecord, SightingStore } from "../store/sighting-store.ts";
import type { WatchlistStore } from "../store/watchlist-store.ts";
import type { Embedder } from "../vision/inference/embedder.ts";
import type { FrameAnalyzer } from "../vision/inference/face-analyzer.ts";

export interface ExportRequest {
  /** A watchlist person's id, or an unknown identity's (`unknown-…`). */
  person: string;
  from?: number;
  to?: number;
  /** A new (or empty) folder. */
  out: string;
  /** `others`: every face but the person's masked; `none`: the clips as recorded. */
  redact: "others" | "none";
}

export interface ExportedFile {
  file: string;
  cameraId: string;
  /** The clip's wall-clock span (ms). */
  start: number;
  end: number;
  /** The record it was cut for. */
  clip: { kind: ClipInfo["kind"]; id: string };
  /** The visits (sightings) it shows. */
  sightings: string[];
  sha256: string;
  bytes: number;
  redaction: Omit<RedactResult, "width" | "height"> | null;
}

export interface ExportManifest {
  person: string;
  kind: "watchlist" | "unknown";
  from: number | null;
  to: number | null;
  redact: ExportRequest["redact"];
  createdTs: number;
  visits: number;
  files: ExportedFile[];
  /** Visits with no clip, and why. */
  missing: { sighting: string; cameraId: string; startTs: number; reason: string }[];
  /**
   * CPU seconds the redaction took (this process and its ffmpeg children) per second of video: below 1 is faster
   * than real time on one core.
   */
  cpuPerVideoSecond: number | null;
}

export interface ExportDeps {
  store: SightingStore & AlertStore & WatchlistStore & { unknowns: IdentityStore };
  clips: ClipStore;
  /** The models, for `redact: others` (finding faces, telling the person's from others). */
  vision?: { analyzer: FrameAnalyzer; embedder: Embedder };
  threshold: number;
  maxSide: number;
  /** Told of each clip as it is done. */
  progress?: (done: number, total: number) => void;
  /** Stops the export at its next frame (a replica shutting down hands the export to another). */
  signal?: AbortSignal;
}

const iso = (ts: number | undefined) => (ts === undefined ? "…" : new Date(ts).toISOString());
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** The person's sightings in the range, oldest first. */
async function visitsOf(
  deps: Pick<ExportDeps, "store">,
  req: Pick<ExportRequest, "person" | "from" | "to">,
): Promise<SightingRecord[]> {
  const range = { since: req.from, until: req.to };
  if (isUnknownId(req.person)) {
    if (!(await deps.store.unknowns.getUnknown(req.person)))
      throw new NotFoundError(`no unknown identity ${req.person}`);
    return (await sightingsOfUnknown(deps.store, req.person, range)).reverse();
  }
  if (!(await deps.store.getPerson(req.person)))
    throw new NotFoundError(`no person ${req.person} on the watchlist`);
  return deps.store.byPerson(req.person, range);
}

/** What the person looks like to the embedder: enrolled faces, or the identity's centroid. */
async function referenceOf(deps: ExportDeps, person: string, modelId: string): Promise<Float32Array[]> {
  if (isUnknownId(person)) return [centroidOf((await deps.store.unknowns.getUnknown(person))!.sum)];
  const faces = (await deps.store.listFaceVectors(modelId)).filter((f) => f.personId === person);
  if (faces.length === 0)
    throw new InvalidInputError(
      `${person} has no enrolled face for model ${modelId}: their face cannot be told from others`,
    );
  return faces.map((f) => f.vector);
}

/** What an export will hold: the person's visits, the clip each is shown by, and visits with none (and why). */
export interface ExportPlan {
  visits: SightingRecord[];
  clips: { info: ClipInfo; sightings: string[] }[];
  missing: ExportManifest["missing"];
}

/**
 * Which clips show the person's visits in the range: a visit's own clip (cameras with `record.keep: sightings`),
 * else the clip of an alert raised during it; one per clip, however many visits it shows. Refused with a clear
 * error for a person with no visits in the range, or visits none of which has a clip.
 */
export async function planExport(
  deps: Pick<ExportDeps, "store" | "clips">,
  req: Pick<ExportRequest, "person" | "from" | "to">,
): Promise<ExportPlan> {
  const visits = await visitsOf(deps, req);
  if (visits.length === 0)
    throw new InvalidInputError(`${req.person} has no visits between ${iso(req.from)} and ${iso(req.to)}`);
  const alerts = isUnknownId(req.person)
    ? []
    : (await deps.store.listAlerts({ personId: req.person, since: req.from, until: req.to, limit: 500 }))
        .items;
  const chosen = new Map<string, { info: ClipInfo; sightings: string[] }>();
  const missing: ExportManifest["missing"] = [];
  for (const v of visits) {
    let info = await deps.clips.info("sightings", v.id, v.startTs);
    if (!info || info.none) {
      const during = alerts.filter((a) => a.cameraId === v.cameraId && a.ts >= v.startTs && a.ts <= v.endTs);
      for (const a of during) {
        const found = await deps.clips.info("alerts", a.id, a.ts);
        if (found && !found.none) {
          info = found;
          break;
        }
      }
    }
    if (!info || info.none) {
      missing.push({
        sighting: v.id,
        cameraId: v.cameraId,
        startTs: v.startTs,
        reason:
          info?.none ?? `no clip: camera ${v.cameraId} does not keep clips of this visit, or they expired`,
      });
      continue;
    }
    const key = `${info.kind}/${info.id}`;
    const entry = chosen.get(key) ?? { info, sightings: [] };
    entry.sightings.push(v.id);
    chosen.set(key, entry);
  }
  if (chosen.size === 0)
    throw new InvalidInputError(
      `${req.person} has ${visits.length} visit(s) between ${iso(req.from)} and ${iso(req.to)}, but none has a clip ` +
        `(${missing[0]!.reason})`,
    );
  return { visits, clips: [...chosen.values()].sort((a, b) => a.info.start - b.info.start), missing };
}

/**
 * Exports every clip of a person's visits in a time range (planExport) into `out`, each re-encoded with every
 * other face masked (`redact: others`), with a manifest naming the cameras, times and sha256 of each file.
 */
export async function exportPerson(
  deps: ExportDeps,
  req: ExportRequest,
  /** The plan already made for `req` (a caller that checked it before starting); else made here. */
  plan?: ExportPlan,
): Promise<ExportManifest> {
  if (existsSync(req.out) && readdirSync(req.out).length > 0)
    throw new InvalidInputError(`${req.out} is not empty: export into a new folder`);
  const { visits, clips, missing } = plan ?? (await planExport(deps, req));
  if (req.redact === "others" && !deps.vision) throw new Error("redacting needs the face models");
  const reference =
    req.redact === "others" && deps.vision
      ? await referenceOf(deps, req.person, deps.vision.embedder.modelId)
      : [];
  mkdirSync(req.out, { recursive: true });
  const scratch = path.join(req.out, ".scratch");
  mkdirSync(scratch, { recursive: true });
  const files: ExportedFile[] = [];
  let cpu = 0;
  let seconds = 0;
  try {
    let done = 0;
    for (const { info, sightings } of clips) {
      deps.signal?.throwIfAborted();
      const video = await deps.clips.video(info.kind, info.id, info.ts);
      if (!video) {
        for (const s of sightings)
          missing.push({
            sighting: s,
            cameraId: info.cameraId,
            startTs: info.start,
            reason: "its clip was deleted",
          });
        continue;
      }
      const name = `${String(files.length + 1).padStart(3, "0")}-${info.cameraId}-${new Date(info.start).toISOString().replace(/[:.]/g, "-")}.mp4`;
      const target = path.join(req.out, name);
      let redaction: RedactResult | null = null;
      if (req.redact === "others" && deps.vision) {
        const source = path.join(scratch, `${info.kind}-${files.length}.mp4`);
        writeFileSync(source, video);
        const before = selfAndChildrenCpuSeconds();
        redaction = await redactVideo(source, target, {
          vision: deps.vision,
          person: reference,
          threshold: deps.threshold,
          maxSide: deps.maxSide,
          ...(deps.signal ? { signal: deps.signal } : {}),
        });
        // Detection, tracking and masking here, and the decoder and encoder ffmpeg children.
        cpu += selfAndChildrenCpuSeconds() - before;
        seconds += redaction.seconds;
      } else writeFileSync(target, video);
      const written = new Uint8Array(readFileSync(target));
      const { width: _w, height: _h, ...r } = redaction ?? ({} as RedactResult);
      files.push({
        file: name,
        cameraId: info.cameraId,
        start: info.start,
        end: info.end,
        clip: { kind: info.kind, id: info.id },
        sightings,
        sha256: sha256(written),
        bytes: written.length,
        redaction: redaction ? r : null,
      });
      deps.progress?.(++done, clips.length);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const manifest: ExportManifest = {
    person: req.person,
    kind: isUnknownId(req.person) ? "unknown" : "watchlist",
    from: req.from ?? null,
    to: req.to ?? null,
    redact: req.redact,
    createdTs: Date.now(),
    visits: visits.length,
    files,
    missing,
    cpuPerVideoSecond: seconds > 0 ? cpu / seconds : null,
  };
  writeFileSync(path.join(req.out, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}
