import type { Config } from "../../lib/config/index.ts";
import { buildTimeline, parseTime } from "../../lib/history/timeline.ts";
import type { SightingRecord } from "../../lib/store/sighting-store.ts";
import { thresholdFor } from "../../lib/vision/models/calibration.ts";
import { embedSingleFace } from "../../lib/watchlist/photo.ts";
import { UsageError, visionFor } from "../context.ts";
import { openStore } from "../../lib/store/open-store.ts";

const iso = (ts: number) => new Date(ts).toISOString();

export interface SearchOptions {
  image: string;
  camera?: string[];
  since?: string;
  until?: string;
  top: number;
  json?: boolean;
}

async function photoVector(config: Config, image: string) {
  const vision = await visionFor(config);
  const face = await embedSingleFace(vision, image, image);
  if (!face.ok) throw new UsageError(`${image}: ${face.reason}`);
  return face;
}

/** "Where has this face been?": stored sightings by similarity, with camera and time filters. */
export async function searchCommand(config: Config, opts: SearchOptions) {
  const face = await photoVector(config, opts.image);
  const store = openStore(config);
  try {
    const hits = await store.search({
      modelId: face.modelId,
      vector: face.vector,
      cameras: opts.camera,
      since: opts.since ? parseTime(opts.since) : undefined,
      until: opts.until ? parseTime(opts.until) : undefined,
      top: opts.top,
    });
    const threshold = thresholdFor(face.modelId, config);
    if (opts.json) {
      console.log(
        JSON.stringify({
          threshold,
          hits: hits.map((h) => ({ ...h.sighting, score: h.score, sameperson: h.score >= threshold })),
        }),
      );
      return hits;
    }
    if (hits.length === 0) console.log("no sightings");
    for (const h of hits) {
      const s = h.sighting;
      const mark = h.score >= threshold ? "≥" : "<";
      console.log(
        `${h.score.toFixed(3)} ${mark} ${threshold.toFixed(3)}  ${iso(s.startTs)}  ${s.cameraId.padEnd(12)} ${s.id}${s.match ? `  (matched ${s.match.personId})` : ""}`,
      );
    }
    return hits;
  } finally {
    store.close();
  }
}

export interface TimelineOptions {
  person?: string;
  image?: string;
  since?: string;
  until?: string;
  mergeGapS: number;
  json?: boolean;
}

/** A person's path across cameras, by their watchlist matches or by a photo. */
export async function timelineCommand(config: Config, opts: TimelineOptions) {
  if (!opts.person === !opts.image)
    throw new UsageError("give exactly one of --person <id> or --image <photo>");
  const since = opts.since ? parseTime(opts.since) : undefined;
  const until = opts.until ? parseTime(opts.until) : undefined;
  const face = opts.image ? await photoVector(config, opts.image) : undefined;
  const store = openStore(config);
  try {
    let sightings: (SightingRecord & { score?: number })[];
    if (face) {
      // Every stored sighting above the calibrated threshold is this person.
      const threshold = thresholdFor(face.modelId, config);
      const hits = await store.search({
        modelId: face.modelId,
        vector: face.vector,
        since,
        until,
        top: 10_000,
      });
      sightings = hits.filter((h) => h.score >= threshold).map((h) => ({ ...h.sighting, score: h.score }));
    } else {
      sightings = await store.byPerson(opts.person!, { since, until });
    }
    const visits = buildTimeline(sightings, opts.mergeGapS * 1000);
    if (opts.json) console.log(JSON.stringify({ visits }));
    else if (visits.length === 0) console.log("no sightings");
    else
      for (const v of visits)
        console.log(
          `${iso(v.startTs)} → ${iso(v.endTs)}  ${v.cameraId.padEnd(12)} ${v.sightings.length} sighting(s), ${v.faces} face(s)${v.score !== null ? `, best ${v.score.toFixed(3)}` : ""}`,
        );
    return visits;
  } finally {
    store.close();
  }
}
