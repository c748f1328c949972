import type { SightingRecord } from "../store/sighting-store.ts";

export interface Visit {
  cameraId: string;
  startTs: number;
  endTs: number;
  sightings: string[];
  faces: number;
  /** Best match or search score among the merged sightings. */
  score: number | null;
}

/**
 * A person's path across cameras: sightings in time order, consecutive ones on the same camera (no other camera
 * in between, gap at most `mergeGapMs`) merged into one visit.
 */
export function buildTimeline(
  sightings: (SightingRecord & { score?: number | null })[],
  mergeGapMs: number,
): Visit[] {
  const ordered = [...sightings].sort(
    (a, b) => a.startTs - b.startTs || a.cameraId.localeCompare(b.cameraId),
  );
  const visits: Visit[] = [];
  for (const s of ordered) {
    const score = s.score ?? s.match?.score ?? null;
    const last = visits.at(-1);
    if (last && last.cameraId === s.cameraId && s.startTs - last.endTs <= mergeGapMs) {
      last.endTs = Math.max(last.endTs, s.endTs);
      last.sightings.push(s.id);
      last.faces += s.faces;
      if (score !== null && (last.score === null || score > last.score)) last.score = score;
      continue;
    }
    visits.push({
      cameraId: s.cameraId,
      startTs: s.startTs,
      endTs: s.endTs,
      sightings: [s.id],
      faces: s.faces,
      score,
    });
  }
  return visits;
}

/** `2026-11-27T10:00`, an epoch in ms, or a relative `90s` / `15m` / `6h` / `3d` (ago). */
export function parseTime(text: string, now = Date.now()): number {
  const rel = /^(\d+(?:\.\d+)?)(s|m|h|d)$/.exec(text.trim());
  if (rel)
    return now - Number(rel[1]) * { s: 1e3, m: 6e4, h: 36e5, d: 864e5 }[rel[2] as "s" | "m" | "h" | "d"];
  if (/^\d{10,}$/.test(text.trim())) return Number(text);
  const parsed = Date.parse(text);
  if (Number.isNaN(parsed))
    throw new Error(`cannot read "${text}" as a time (ISO date, epoch ms, or 15m / 6h / 3d ago)`);
  return parsed;
}
