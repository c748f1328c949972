import path from "node:path";
import { cosine } from "../geometry/index.ts";
import type { QualityScores } from "../contracts/index.ts";
import type { Vision } from "../vision/inference/vision.ts";
import { recognisability, type RecognisabilityModel } from "../vision/pixels/quality.ts";
import { fitRecognisability, type RecognisabilitySample } from "../vision/models/calibration.ts";
import { surveillanceScale } from "./degrade.ts";
import { extractFaces, scanIdentities, type ExtractedFace } from "./faces.ts";
import { parseLfwPairs } from "./lfw-pairs.ts";

/** Fractions of the poorest comparisons rejected, as ISO/IEC 29794-1's error-versus-reject curve plots them. */
export const REJECT_STEPS = [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6];

export interface EvrcCurve {
  measure: string;
  /** False non-match rate at the operating threshold after rejecting each fraction in REJECT_STEPS. */
  fnmr: number[];
}

export interface EvrcSet {
  name: string;
  genuinePairs: number;
  curves: EvrcCurve[];
}

export interface QualityReport {
  embedder: string;
  threshold: number;
  seed: number;
  /** Coefficients fitted on this run's data, in the registry's form. */
  fitted: RecognisabilityModel;
  /** Which coefficients the curves and bins use: the registry's when the model has them, else the fitted ones. */
  using: "registry" | "fitted";
  /** Fitted on one half of the identities, ranked on the other (and back): AUC of "recognised". */
  heldOutAuc: number[];
  samples: number;
  evrc: EvrcSet[];
  /**
   * Impostor pairs binned by the poorer face's recognisability: whether poor faces need a stricter threshold
   * (the false-match rate at the operating threshold per bin) and how much of them is recognised at all.
   */
  bins: { from: number; to: number; faces: number; recognised: number; impostorPairs: number; far: number }[];
  seconds: number;
}

type Faces = Map<string, ExtractedFace>;

/** Every face of the set matched against its identity's first image, undegraded: what enrolment gives. */
function samplesFrom(
  identities: { id: string; files: string[] }[],
  reference: Faces,
  sets: Faces[],
  threshold: number,
): (RecognisabilitySample & { identity: string })[] {
  const out: (RecognisabilitySample & { identity: string })[] = [];
  for (const i of identities) {
    if (i.files.length < 2) continue;
    const ref = reference.get(i.files[0]!)?.vector;
    if (!ref) continue;
    for (const set of sets) {
      for (const file of i.files.slice(1)) {
        const f = set.get(file);
        if (!f?.vector || !f.quality) continue;
        out.push({ identity: i.id, quality: f.quality, recognised: cosine(f.vector, ref) >= threshold });
      }
    }
  }
  return out;
}

function auc(scores: number[], labels: boolean[]): number {
  const order = scores.map((s, i) => ({ s, y: labels[i]! })).sort((a, b) => a.s - b.s);
  let rankSum = 0,
    pos = 0;
  order.forEach((o, k) => {
    if (o.y) {
      rankSum += k + 1;
      pos++;
    }
  });
  const neg = order.length - pos;
  return pos && neg ? (rankSum - (pos * (pos + 1)) / 2) / (pos * neg) : 0.5;
}

/** FNMR at `threshold` over genuine pairs after dropping the `fraction` with the lowest pair quality. */
export function evrc(pairs: { score: number; quality: number }[], threshold: number): number[] {
  const sorted = [...pairs].sort((a, b) => a.quality - b.quality);
  return REJECT_STEPS.map((fraction) => {
    const kept = sorted.slice(Math.floor(fraction * sorted.length));
    return kept.length ? kept.filter((p) => p.score < threshold).length / kept.length : 0;
  });
}

export async function evaluateQuality(
  vision: Vision,
  imagesDir: string,
  pairsFile: string,
  options: {
    threshold: number;
    seed: number;
    registry?: RecognisabilityModel;
    onProgress: (phase: string, total: number) => { tick(): void; done(): void };
  },
): Promise<QualityReport> {
  const started = Date.now();
  const identities = scanIdentities(imagesDir);
  const files = identities.flatMap((i) => i.files);
  const extract = async (name: string, scale: (f: string) => number) =>
    new Map(
      (
        await extractFaces(
          vision,
          imagesDir,
          files.map((file) => ({ file, scale: scale(file) })),
          name,
          options.onProgress,
        )
      ).map((f) => [f.file, f]),
    );
  const clean = await extract("as stored", () => 1);
  const degraded = await extract("surveillance", (f) => surveillanceScale(f, options.seed));

  const samples = samplesFrom(identities, clean, [clean, degraded], options.threshold);
  const fitted = fitRecognisability(samples);
  const position = new Map(identities.map((i, k) => [i.id, k]));
  const heldOutAuc = [0, 1].map((half) => {
    const inHalf = (id: string) => position.get(id)! % 2 === half;
    const model = fitRecognisability(samples.filter((s) => !inHalf(s.identity)));
    const test = samples.filter((s) => inHalf(s.identity));
    return auc(
      test.map((s) => recognisability(s.quality, model)),
      test.map((s) => s.recognised),
    );
  });
  const model = options.registry ?? fitted;
  const q = (s: QualityScores) => recognisability(s, model);

  const { pairs } = parseLfwPairs(pairsFile);
  type Comparison = { a: ExtractedFace; b: ExtractedFace };
  const curves = (comparisons: Comparison[]): EvrcCurve[] => {
    const curve = (measure: string, quality: (s: QualityScores) => number): EvrcCurve => ({
      measure,
      fnmr: evrc(
        comparisons.map(({ a, b }) => ({
          score: cosine(a.vector!, b.vector!),
          quality: Math.min(quality(a.quality!), quality(b.quality!)),
        })),
        options.threshold,
      ),
    });
    return [
      curve("recognisability", q),
      curve("sharpness", (s) => s.sharpness),
      curve("inter-ocular distance", (s) => s.interOcular),
      curve("detector score", (s) => s.detScore),
    ];
  };
  // A pair the detector missed cannot be rejected on quality: it has none, and is left out of every curve.
  const found = (c: { a?: ExtractedFace; b?: ExtractedFace }): c is Comparison =>
    !!c.a?.vector && !!c.b?.vector;
  const genuine = (set: Faces) =>
    pairs.filter((p) => p.same).map((p) => ({ a: set.get(p.a), b: set.get(p.b) }));
  // The watchlist case: a camera's face against a good enrolment photo (its identity's first image, as stored).
  const probes = identities.flatMap((i) =>
    i.files.slice(1).map((f) => ({ a: clean.get(i.files[0]!), b: degraded.get(f) })),
  );
  const evrcSets: EvrcSet[] = [
    ["LFW dev pairs", genuine(clean).filter(found)],
    ["degraded probe vs enrolment photo", probes.filter(found)],
    ["degraded pairs (as lfw-dev-lowres)", genuine(degraded).filter(found)],
  ].map(([name, comparisons]) => ({
    name: name as string,
    genuinePairs: (comparisons as Comparison[]).length,
    curves: curves(comparisons as Comparison[]),
  }));

  // Impostor pairs of degraded probes against clean references (a camera face against a watchlist photo).
  const refs = identities
    .map((i) => ({ id: i.id, v: clean.get(i.files[0]!)?.vector }))
    .filter((r): r is { id: string; v: Float32Array } => !!r.v);
  const edges = [0, 0.05, 0.2, 0.5, 0.8, 1.0001];
  const bins = edges.slice(0, -1).map((from, k) => ({
    from,
    to: Math.min(1, edges[k + 1]!),
    faces: 0,
    recognised: 0,
    impostorPairs: 0,
    falseMatches: 0,
  }));
  const binOf = (v: number) => bins.findIndex((b, k) => v >= b.from && v < edges[k + 1]!);
  for (const s of samples) {
    const b = bins[binOf(q(s.quality))]!;
    b.faces++;
    if (s.recognised) b.recognised++;
  }
  for (const set of [clean, degraded]) {
    for (const f of set.values()) {
      if (!f.vector || !f.quality) continue;
      const b = bins[binOf(q(f.quality))]!;
      const own = path.dirname(f.file);
      for (const r of refs) {
        if (r.id === own) continue;
        b.impostorPairs++;
        if (cosine(f.vector, r.v) >= options.threshold) b.falseMatches++;
      }
    }
  }

  return {
    embedder: vision.embedder.modelId,
    threshold: options.threshold,
    seed: options.seed,
    fitted,
    using: options.registry ? "registry" : "fitted",
    heldOutAuc,
    samples: samples.length,
    evrc: evrcSets,
    bins: bins.map(({ falseMatches, ...b }) => ({
      ...b,
      recognised: b.faces ? b.recognised / b.faces : 0,
      far: b.impostorPairs ? falseMatches / b.impostorPairs : 0,
    })),
    seconds: (Date.now() - started) / 1000,
  };
}
