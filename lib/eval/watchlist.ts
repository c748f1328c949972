import type { QualityScores } from "../contracts/index.ts";
import { cosine } from "../geometry/index.ts";
import type { Vision } from "../vision/inference/vision.ts";
import { recognisability, type RecognisabilityModel } from "../vision/pixels/quality.ts";
import { decisionScore, TrackTemplate, type DecisionRule } from "../../services/match/template.ts";
import { surveillanceScale, type Degradation } from "./degrade.ts";
import { extractFaces, scanIdentities, type ExtractedFace, type Identity } from "./faces.ts";

/** Tracks of up to this many looks: a person crossing a camera's view at 5 fps, after the embed gate. */
export const TRACK_LOOKS = 4;

export interface WatchlistProtocol {
  /** Every second identity with ≥ 2 images (sorted order), enrolled from its first image. */
  enrolled: { id: string; file: string; probes: string[] }[];
  /** Every image of every other identity, singletons included. */
  nonMated: Identity[];
}

/** The open-set 1:N split of a folder-per-identity set. */
export function watchlistProtocol(identities: Identity[]): WatchlistProtocol {
  const multi = identities.filter((i) => i.files.length >= 2);
  const enrolledIds = new Set(multi.filter((_, k) => k % 2 === 0).map((i) => i.id));
  return {
    enrolled: multi
      .filter((i) => enrolledIds.has(i.id))
      .map((i) => ({ id: i.id, file: i.files[0]!, probes: i.files.slice(1) })),
    nonMated: identities.filter((i) => !enrolledIds.has(i.id)),
  };
}

export interface OperatingPoint {
  /** FPIR asked for, and the one reached (non-mated searches are finite: 1/N is the smallest step). */
  fpir: number;
  achievedFpir: number;
  threshold: number;
  fnir: number;
}

export interface DecisionFigures {
  searches: number;
  nonMatedSearches: number;
  /** Share of mated searches whose best candidate (no threshold) is their own identity. */
  rank1: number;
  at1e2: OperatingPoint;
  at1e3: OperatingPoint;
}

export interface WatchlistReport {
  protocol: string;
  pack: string;
  embedder: string;
  degrade: Degradation;
  seed: number;
  identities: number;
  enrolled: number;
  matedProbes: number;
  nonMatedProbes: number;
  /** Probes whose image gave the detector no face: a miss for mated probes, silence for non-mated ones. */
  noFace: { mated: number; nonMated: number; gallery: number };
  /** Probes with a face below the photo quality gate: weak looks, which live video still matches. */
  belowQualityGate: number;
  /**
   * Probes with a face live video's gate drops (quality.ts: no detail left, too small to align): scored in the
   * single-image figures, which measure the embedder, but never a look in the rule's or the tracks' figures,
   * as they never reach the match stage.
   */
  belowLiveGate: number;
  /** Probes per degradation scale drawn (1 = kept). */
  scales: Record<string, number>;
  rule: DecisionRule & { recognisability: boolean };
  /** Each probe alone, best gallery score: the protocol's single-image decision. */
  single: DecisionFigures;
  /** Each probe alone, through the match stage's rule (a face too poor to trust never decides alone). */
  singleWithRule: DecisionFigures;
  /** Tracks of up to 4 looks, decided on the match stage's track template as live matching does. */
  track: DecisionFigures;
  fnirAtFpir1e2: number;
  fnirAtFpir1e3: number;
  fnirAtFpir1e2Track: number;
  fnirAtFpir1e3Track: number;
  rank1: number;
  rank1Track: number;
  /** Single images by sharpness band at the FPIR 1 % threshold: what live video's sharpness floor rests on. */
  bySharpness: SharpnessBand[];
  /** Single images by the degradation scale drawn, at the FPIR 1 % threshold: how small a face the embedder still knows. */
  byScale: ScaleBand[];
  /**
   * Mated tracks by their best look's scale (looks that reach the match stage; 0: a track with none), found at the
   * tracks' FPIR 1 % threshold: what tracks gain depends on how many have a look the embedder can still recognise.
   */
  tracksByBestLook: TrackBand[];
  /**
   * An estimate, not a bound: the FNIR tracks would have at FPIR 1 % if scale alone decided — every track with a
   * look at a scale where single images are found at least half the time found, every other track missed
   * (undefined undegraded, where the scale of a look is not known).
   */
  trackFnirIfScaleDecides?: number;
  seconds: number;
}

export interface ScaleBand {
  /** The degradation scale drawn (1 = kept as stored). */
  scale: number;
  mated: number;
  /** Own identity best and at or above the single-image threshold. */
  matedFound: number;
  nonMated: number;
  nonMatedAlerting: number;
}

export interface TrackBand {
  /** The largest scale among the track's looks that reach the match stage (1 = kept as stored; 0 = no look). */
  bestScale: number;
  tracks: number;
  found: number;
}

export interface SharpnessBand {
  sharpness: string;
  mated: number;
  /** Own identity best and at or above the threshold. */
  matedFound: number;
  nonMated: number;
  nonMatedAlerting: number;
}

interface Gallery {
  ids: string[];
  vectors: Float32Array[];
}

function bestCandidate(gallery: Gallery, v: Float32Array): { id: string; score: number } {
  let best = { id: "", score: -Infinity };
  for (let g = 0; g < gallery.vectors.length; g++) {
    const s = cosine(gallery.vectors[g]!, v);
    if (s > best.score) best = { id: gallery.ids[g]!, score: s };
  }
  return best;
}

/**
 * FNIR at the strictest threshold whose FPIR stays within `fpir`: the threshold sits just above the
 * (⌊fpir·N⌋+1)-th highest non-mated score. A mated search counts as found only when its own identity is the
 * decided candidate, so a confident wrong answer is a miss, as in NIST's 1:N reports.
 */
export function operatingPoint(mated: number[], nonMated: number[], fpir: number): OperatingPoint {
  const nm = [...nonMated].sort((a, b) => b - a);
  const allowed = Math.floor(fpir * nm.length);
  const edge = nm[allowed];
  const threshold = edge === undefined || edge === -Infinity ? -1 : edge + 1e-9;
  const falsePositives = nm.filter((s) => s >= threshold).length;
  return {
    fpir,
    achievedFpir: nm.length ? falsePositives / nm.length : 0,
    threshold,
    fnir: mated.length ? mated.filter((s) => !(s >= threshold)).length / mated.length : 0,
  };
}

function figures(mated: number[], nonMated: number[], rank1Hits: number): DecisionFigures {
  return {
    searches: mated.length,
    nonMatedSearches: nonMated.length,
    rank1: mated.length ? rank1Hits / mated.length : 0,
    at1e2: operatingPoint(mated, nonMated, 1e-2),
    at1e3: operatingPoint(mated, nonMated, 1e-3),
  };
}

interface Probe {
  id: string;
  mated: boolean;
  face: ExtractedFace;
}

/**
 * A sequence of looks decided the way the match stage decides a track: after each look the template is matched
 * and the rule applied, and the track counts from the first look at which it would alert. The score returned
 * is the best decision score over the track's life for `want` (its true identity; any identity when undefined).
 */
export function trackDecision(
  gallery: Gallery,
  looks: { vector: Float32Array; quality: number }[],
  rule: Pick<DecisionRule, "minTrust">,
  want?: string,
): { score: number; finalTop: string | undefined } {
  let template: TrackTemplate | undefined;
  let score = -Infinity;
  let finalTop: string | undefined;
  for (const look of looks) {
    if (template) template.add(look.vector, look.quality);
    else template = TrackTemplate.of(look.vector, look.quality);
    const best = bestCandidate(gallery, template.vector);
    finalTop = best.id;
    if (want === undefined || best.id === want)
      score = Math.max(score, decisionScore(rule, template.trust, best.score));
  }
  return { score, finalTop };
}

export interface WatchlistEvalOptions {
  degrade: Degradation;
  seed: number;
  rule: DecisionRule;
  /** The embedder's recognisability model; without one every look is trusted (q = 1). */
  recognisability?: RecognisabilityModel;
  onProgress?: (phase: string, total: number) => { tick(): void; done(): void };
}

const silent = () => ({ tick() {}, done() {} });

export async function evaluateWatchlist(
  vision: Vision,
  imagesDir: string,
  options: WatchlistEvalOptions,
): Promise<WatchlistReport> {
  const started = Date.now();
  const identities = scanIdentities(imagesDir);
  const protocol = watchlistProtocol(identities);
  const onProgress = options.onProgress ?? silent;
  // Watchlist photos are usually good: the gallery is never degraded.
  const galleryFaces = await extractFaces(
    vision,
    imagesDir,
    protocol.enrolled.map((e) => ({ file: e.file, scale: 1 })),
    "gallery",
    onProgress,
  );
  const scaleOf = (file: string) =>
    options.degrade === "surveillance" ? surveillanceScale(file, options.seed) : 1;
  const probeList: { id: string; mated: boolean; file: string }[] = [];
  protocol.enrolled.forEach((e, k) => {
    // An identity the detector cannot enrol is not on the watchlist: its other images are strangers.
    const enrolled = galleryFaces[k]!.vector !== undefined;
    for (const file of enrolled ? e.probes : [e.file, ...e.probes])
      probeList.push({ id: e.id, mated: enrolled, file });
  });
  for (const i of protocol.nonMated)
    for (const file of i.files) probeList.push({ id: i.id, mated: false, file });
  const probeFaces = await extractFaces(
    vision,
    imagesDir,
    probeList.map((p) => ({ file: p.file, scale: scaleOf(p.file) })),
    "probes",
    onProgress,
  );
  const probes: Probe[] = probeList.map((p, k) => ({ id: p.id, mated: p.mated, face: probeFaces[k]! }));
  const gallery: Gallery = { ids: [], vectors: [] };
  protocol.enrolled.forEach((e, k) => {
    const v = galleryFaces[k]!.vector;
    if (v) {
      gallery.ids.push(e.id);
      gallery.vectors.push(v);
    }
  });
  const scored = scoreWatchlist(gallery, probes, options);
  return {
    protocol:
      "open-set 1:N: every second identity with ≥ 2 images enrolled from its first image (undegraded); its other images mated probes; every image of the other identities a non-mated probe; tracks of up to 4 of an identity's probes in order",
    pack: vision.pack.id,
    embedder: vision.embedder.modelId,
    degrade: options.degrade,
    seed: options.seed,
    identities: identities.length,
    enrolled: gallery.ids.length,
    matedProbes: probes.filter((p) => p.mated).length,
    nonMatedProbes: probes.filter((p) => !p.mated).length,
    noFace: {
      mated: probes.filter((p) => p.mated && !p.face.vector).length,
      nonMated: probes.filter((p) => !p.mated && !p.face.vector).length,
      gallery: galleryFaces.filter((f) => !f.vector).length,
    },
    belowQualityGate: probes.filter((p) => p.face.vector && p.face.gateReasons.length > 0).length,
    belowLiveGate: probes.filter((p) => p.face.vector && p.face.liveReasons.length > 0).length,
    scales: probes.reduce<Record<string, number>>((acc, p) => {
      acc[String(p.face.scale)] = (acc[String(p.face.scale)] ?? 0) + 1;
      return acc;
    }, {}),
    ...scored,
    seconds: (Date.now() - started) / 1000,
  };
}

/** The scoring half, apart from extraction so it can be checked on synthetic vectors. */
export function scoreWatchlist(
  gallery: Gallery,
  probes: Probe[],
  options: Pick<WatchlistEvalOptions, "rule" | "recognisability">,
) {
  const { rule } = options;
  const q = (s: QualityScores | undefined) =>
    s && options.recognisability ? recognisability(s, options.recognisability) : 1;

  const single = { mated: [] as number[], nonMated: [] as number[], rank1: 0 };
  const ruled = { mated: [] as number[], nonMated: [] as number[], rank1: 0 };
  // What the match stage would see of a probe: nothing when the detector or live video's gate drops it.
  const look = (p: Probe) => (p.face.vector && p.face.liveReasons.length === 0 ? p.face.vector : undefined);
  for (const p of probes) {
    const v = p.face.vector;
    const best = v ? bestCandidate(gallery, v) : undefined;
    const lv = look(p);
    const trusted = lv
      ? trackDecision(gallery, [{ vector: lv, quality: q(p.face.quality) }], rule)
      : undefined;
    if (p.mated) {
      const hit = best?.id === p.id;
      if (hit) single.rank1++;
      single.mated.push(hit ? best!.score : -Infinity);
      ruled.mated.push(hit && trusted ? trusted.score : -Infinity);
    } else {
      single.nonMated.push(best?.score ?? -Infinity);
      ruled.nonMated.push(trusted?.score ?? -Infinity);
    }
  }
  ruled.rank1 = single.rank1;

  const track = { mated: [] as number[], nonMated: [] as number[], rank1: 0 };
  const matedTrackScales: number[] = [];
  const byIdentity = new Map<string, Probe[]>();
  for (const p of probes) byIdentity.set(p.id, [...(byIdentity.get(p.id) ?? []), p]);
  for (const [id, list] of byIdentity) {
    for (let start = 0; start < list.length; start += TRACK_LOOKS) {
      const chunk = list.slice(start, start + TRACK_LOOKS);
      const mated = chunk[0]!.mated;
      // A look the detector missed or the live gate dropped never reaches the match stage; a track of only
      // such looks is never seen.
      const looks = chunk.flatMap((p) => {
        const vector = look(p);
        return vector ? [{ vector, quality: q(p.face.quality) }] : [];
      });
      const decided = looks.length
        ? trackDecision(gallery, looks, rule, mated ? id : undefined)
        : { score: -Infinity, finalTop: undefined };
      if (mated) {
        track.mated.push(decided.score);
        matedTrackScales.push(Math.max(0, ...chunk.flatMap((p) => (look(p) ? [p.face.scale] : []))));
        if (decided.finalTop === id) track.rank1++;
      } else {
        track.nonMated.push(decided.score);
      }
    }
  }

  const s = figures(single.mated, single.nonMated, single.rank1);
  const r = figures(ruled.mated, ruled.nonMated, ruled.rank1);
  const t = figures(track.mated, track.nonMated, track.rank1);
  const scales = byScale(gallery, probes, s.at1e2.threshold);
  const tracksByBestLook = [...new Set(matedTrackScales)]
    .sort((a, b) => b - a)
    .map((bestScale) => {
      const at = matedTrackScales.flatMap((sc, k) => (sc === bestScale ? [track.mated[k]!] : []));
      return {
        bestScale,
        tracks: at.length,
        found: at.filter((score) => score >= t.at1e2.threshold).length,
      };
    });
  return {
    bySharpness: bySharpness(gallery, probes, s.at1e2.threshold),
    byScale: scales,
    tracksByBestLook,
    trackFnirIfScaleDecides: trackFnirIfScaleDecides(scales, tracksByBestLook),
    rule: { ...rule, recognisability: !!options.recognisability },
    single: s,
    singleWithRule: r,
    track: t,
    fnirAtFpir1e2: s.at1e2.fnir,
    fnirAtFpir1e3: s.at1e3.fnir,
    fnirAtFpir1e2Track: t.at1e2.fnir,
    fnirAtFpir1e3Track: t.at1e3.fnir,
    rank1: s.rank1,
    rank1Track: t.rank1,
  };
}

/**
 * How far tracks can get when the scale of their best look decides: a track whose looks are all at scales where
 * single images are found less than half the time (or that has no look) counts as missed, every other track as
 * found. An estimate of what a track rule can reach with this embedder, not a bound: a rule may still find a few
 * tracks of small looks, and miss some with a large one. Defined only for degraded probes.
 */
function trackFnirIfScaleDecides(scales: ScaleBand[], tracks: TrackBand[]): number | undefined {
  if (scales.length < 2) return undefined;
  const known = new Set(scales.filter((b) => b.mated && b.matedFound / b.mated >= 0.5).map((b) => b.scale));
  const all = tracks.reduce((n, b) => n + b.tracks, 0);
  const lost = tracks.filter((b) => !known.has(b.bestScale)).reduce((n, b) => n + b.tracks, 0);
  return all ? lost / all : undefined;
}

function byScale(gallery: Gallery, probes: Probe[], threshold: number): ScaleBand[] {
  return [...new Set(probes.map((p) => p.face.scale))]
    .sort((a, b) => b - a)
    .map((scale) => ({
      scale,
      ...outcomes(
        gallery,
        probes.filter((p) => p.face.scale === scale),
        threshold,
      ),
    }));
}

/**
 * Single-image outcomes of a band of probes at `threshold`: for mated probes the share found (own identity best
 * and at or above it; a probe with no face is a miss), for non-mated ones the share that would alert.
 */
function outcomes(gallery: Gallery, band: Probe[], threshold: number) {
  const best = (p: Probe) => (p.face.vector ? bestCandidate(gallery, p.face.vector) : undefined);
  const mated = band.filter((p) => p.mated);
  const nonMated = band.filter((p) => !p.mated);
  return {
    mated: mated.length,
    matedFound: mated.filter((p) => {
      const b = best(p);
      return b?.id === p.id && b.score >= threshold;
    }).length,
    nonMated: nonMated.length,
    nonMatedAlerting: nonMated.filter((p) => (best(p)?.score ?? -Infinity) >= threshold).length,
  };
}

/** Sharpness bands (variance of the Laplacian of the aligned crop) that the live gate's floor is chosen from. */
const SHARPNESS_BANDS = [0, 3, 10, 15, Infinity];

/**
 * Single-image outcomes by sharpness band, at the FPIR 1 % threshold: for mated probes the share found (own
 * identity best and at or above it), for non-mated ones the share that would alert. A band where nobody is found
 * and strangers still score is one the live gate can drop without losing anyone.
 */
function bySharpness(gallery: Gallery, probes: Probe[], threshold: number): SharpnessBand[] {
  return SHARPNESS_BANDS.slice(0, -1).map((from, k) => {
    const to = SHARPNESS_BANDS[k + 1]!;
    const band = probes.filter((p) => {
      const sharp = p.face.quality?.sharpness;
      return p.face.vector && sharp !== undefined && sharp >= from && sharp < to;
    });
    return {
      sharpness: to === Infinity ? `>= ${from}` : `${from}-${to}`,
      ...outcomes(gallery, band, threshold),
    };
  });
}
