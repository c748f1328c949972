import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import sharp from "sharp";
import { cosine, iou } from "../geometry/index.ts";
import { cropLargestFace, samplePhotos } from "../media/sample-media.ts";
import type { AlignedFace } from "../vision/inference/face-analyzer.ts";
import type { Vision } from "../vision/inference/vision.ts";
import { decodeImage, type BgrImage, type FrameImage } from "../vision/pixels/image.ts";
import { recognisability, type RecognisabilityModel } from "../vision/pixels/quality.ts";
import { scanIdentities } from "./faces.ts";

/**
 * Impostor pairs from several photo collections, so the operating point is chosen where none of them exceeds
 * the target false-match rate: a threshold calibrated on one collection does not hold on another (the demo's
 * photos put a stranger above LFW's 1e-4 threshold).
 */
export interface Collection {
  name: string;
  /** Faces the product decides on (`Decidable`): the photo gate's, or live video's. */
  faces: number;
  /** Images or faces left out, with why. */
  skipped: string[];
  /** Cross-identity scores, highest first. */
  impostors: Float32Array;
  /** The highest-scoring impostor pairs, for a person to look at. */
  top: { a: string; b: string; score: number }[];
}

interface LabelledFace {
  label: string;
  identity: string;
  vector: Float32Array;
}

type Progress = (phase: string, total: number) => { tick(): void; done(): void };

/**
 * Which faces a collection counts: those the product would decide on. Live video decides on more than the photo
 * gate lets through (a weak look the live gate keeps, once its track can be trusted), so the operating point is
 * chosen over those too.
 */
export type Decidable = (face: AlignedFace) => boolean;

/** Only faces passing the photo gate (enrolment and search photos). */
export const photoGate: Decidable = (f) => f.quality.reasons.length === 0;

/**
 * What the match stage decides on from live video: a face the live gate keeps and that a track of it alone would
 * trust (its recognisability at least the model's least trust; every look when the model has no recognisability).
 */
export function liveDecision(model: RecognisabilityModel | undefined, minTrust: number): Decidable {
  return (f) =>
    f.quality.liveReasons.length === 0 && (!model || recognisability(f.quality.scores, model) >= minTrust);
}

/** Faces of one image the product decides on (all of them, or only the largest). */
async function gatedFaces(
  vision: Vision,
  image: BgrImage,
  largestOnly: boolean,
  decidable: Decidable,
): Promise<AlignedFace[]> {
  let faces = (await vision.analyzer.analyze(image)).filter(decidable);
  if (largestOnly && faces.length > 1) {
    const area = (f: AlignedFace) => f.detection.box.width * f.detection.box.height;
    faces = [faces.reduce((a, b) => (area(b) > area(a) ? b : a))];
  }
  return faces;
}

async function embedAll(vision: Vision, crops: FrameImage[]): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (let i = 0; i < crops.length; i += 32)
    out.push(...(await vision.embedder.embed(crops.slice(i, i + 32))));
  return out;
}

function summarise(
  name: string,
  faces: LabelledFace[],
  skipped: string[],
  isImpostor: (a: LabelledFace, b: LabelledFace) => boolean,
): Collection {
  const scores: number[] = [];
  const top: { a: string; b: string; score: number }[] = [];
  for (let i = 0; i < faces.length; i++) {
    for (let j = i + 1; j < faces.length; j++) {
      const a = faces[i]!,
        b = faces[j]!;
      if (!isImpostor(a, b)) continue;
      const s = cosine(a.vector, b.vector);
      scores.push(s);
      if (top.length < 3 || s > top.at(-1)!.score) {
        top.push({ a: a.label, b: b.label, score: s });
        top.sort((x, y) => y.score - x.score);
        if (top.length > 3) top.pop();
      }
    }
  }
  return {
    name,
    faces: faces.length,
    skipped,
    impostors: Float32Array.from(scores).sort().reverse(),
    top,
  };
}

const differentIdentity = (a: LabelledFace, b: LabelledFace) => a.identity !== b.identity;

/** A folder-per-identity collection (LFW, faces-bbt): the largest gated face of each image. */
export async function folderCollection(
  vision: Vision,
  name: string,
  dir: string,
  onProgress: Progress,
  decidable: Decidable = photoGate,
): Promise<Collection> {
  const files = scanIdentities(dir).flatMap((i) => i.files);
  const found: { label: string; identity: string; crop: FrameImage }[] = [];
  const skipped: string[] = [];
  const bar = onProgress(name, files.length);
  for (const file of files) {
    const face = (
      await gatedFaces(vision, await decodeImage(path.join(dir, file), file), true, decidable)
    )[0];
    if (face) found.push({ label: file, identity: path.dirname(file), crop: face.crop });
    else skipped.push(`${file}: no face the product decides on`);
    bar.tick();
  }
  bar.done();
  const vectors = await embedAll(
    vision,
    found.map((f) => f.crop),
  );
  const faces = found.map((f, k) => ({ label: f.label, identity: f.identity, vector: vectors[k]! }));
  return summarise(name, faces, skipped, differentIdentity);
}

/**
 * deepface's test set: only the pairs its files label "No" are impostors (its images carry no identity names,
 * and two unlabelled images may show one person).
 */
export async function labelledPairsCollection(
  vision: Vision,
  name: string,
  dir: string,
  csvFiles: string[],
  decidable: Decidable = photoGate,
): Promise<Collection> {
  const negatives = new Set<string>();
  for (const csv of csvFiles) {
    const rows = readFileSync(path.join(dir, csv), "utf8").split(/\r?\n/).slice(1);
    for (const row of rows) {
      const [x, y, decision] = row.split(",");
      if (!x || !y || decision?.trim() !== "No") continue;
      const [a, b] = [path.basename(x), path.basename(y)].sort();
      negatives.add(`${a}\n${b}`);
    }
  }
  const names = [...new Set([...negatives].flatMap((k) => k.split("\n")))].sort();
  const skipped: string[] = [];
  const found: { label: string; crop: FrameImage }[] = [];
  for (const file of names) {
    const face = (
      await gatedFaces(vision, await decodeImage(path.join(dir, file), file), true, decidable)
    )[0];
    if (face) found.push({ label: file, crop: face.crop });
    else skipped.push(`${file}: no face the product decides on`);
  }
  const vectors = await embedAll(
    vision,
    found.map((f) => f.crop),
  );
  const faces = found.map((f, k) => ({ label: f.label, identity: f.label, vector: vectors[k]! }));
  return summarise(name, faces, skipped, (a, b) => {
    const [x, y] = [a.label, b.label].sort();
    return negatives.has(`${x}\n${y}`);
  });
}

/**
 * The demo's photos as its video shows them (letterboxed into 1280×720), every gated face, plus its two
 * watchlist crops. Each photo shows different people; a crop is the same person as the largest face of the
 * photo it was cut from, and every other pair is an impostor pair.
 */
export async function demoCollection(
  vision: Vision,
  dataDir: string,
  decidable: Decidable = photoGate,
): Promise<Collection> {
  const photos = await samplePhotos(path.resolve(dataDir, "cache"));
  const faces: { label: string; identity: string; crop: FrameImage }[] = [];
  const skipped: string[] = [];
  /** Per photo, the face cropLargestFace cut the watchlist photo from (largest detection, gated or not). */
  const cropped = new Map<number, string>();
  for (const [k, photo] of photos.entries()) {
    const original = await decodeImage(photo, photo);
    const frame = await sharp(photo)
      .rotate()
      .resize(1280, 720, { fit: "contain", background: { r: 0, g: 0, b: 0 } })
      .jpeg({ quality: 95 })
      .toBuffer();
    const found = await gatedFaces(vision, await decodeImage(new Uint8Array(frame), photo), false, decidable);
    found.forEach((f, i) =>
      faces.push({ label: `sample${k + 1}#${i}`, identity: `sample${k + 1}#${i}`, crop: f.crop }),
    );
    const all = await vision.detector.detect(original);
    if (all.length === 0 || found.length === 0) continue;
    const big = all.reduce((a, b) => (b.box.width * b.box.height > a.box.width * a.box.height ? b : a)).box;
    // Where that face sits in the letterboxed frame.
    const scale = Math.min(1280 / original.width, 720 / original.height);
    const ox = (1280 - original.width * scale) / 2,
      oy = (720 - original.height * scale) / 2;
    const inFrame = {
      x: big.x * scale + ox,
      y: big.y * scale + oy,
      width: big.width * scale,
      height: big.height * scale,
    };
    const best = found.reduce((a, b) =>
      iou(b.detection.box, inFrame) > iou(a.detection.box, inFrame) ? b : a,
    );
    if (iou(best.detection.box, inFrame) > 0.3) cropped.set(k, `sample${k + 1}#${found.indexOf(best)}`);
  }
  // The demo's watchlist: person-a from photo 1 and person-b from photo 4, as prepareSampleMedia crops them.
  const dir = mkdtempSync(path.join(tmpdir(), "vigil-demo-crops-"));
  for (const [person, k] of [
    ["person-a", 0],
    ["person-b", 3],
  ] as const) {
    const out = path.join(dir, `${person}.jpg`);
    await cropLargestFace(vision, photos[k]!, out);
    // The watchlist side is an enrolment photo: the photo gate, whatever the probes are held to.
    const face = (await gatedFaces(vision, await decodeImage(out, out), true, photoGate))[0];
    const identity = cropped.get(k);
    // Unless the crop's own face is known, its genuine pair would be counted as an impostor pair.
    if (face && identity) faces.push({ label: person, identity, crop: face.crop });
    else
      skipped.push(`${person}: its face in ${path.basename(photos[k]!)} was not found among the gated faces`);
  }
  rmSync(dir, { recursive: true, force: true });
  const vectors = await embedAll(
    vision,
    faces.map((f) => f.crop),
  );
  return summarise(
    "demo photos",
    faces.map((f, k) => ({ label: f.label, identity: f.identity, vector: vectors[k]! })),
    skipped,
    differentIdentity,
  );
}

/** Inverse of the standard normal CDF (Acklam's rational approximation, relative error < 1.2e-9). */
export function normalQuantile(p: number): number {
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716,
    2.506628277459239,
  ];
  const b = [
    -54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  const tail = (q: number) =>
    (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) /
    ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  if (p < lo) return tail(Math.sqrt(-2 * Math.log(p)));
  if (p > 1 - lo) return -tail(Math.sqrt(-2 * Math.log(1 - p)));
  const q = p - 0.5,
    r = q * q;
  return (
    ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) /
    (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1)
  );
}

/**
 * The strictest threshold at which at most ⌊far·N⌋ of the collection's N impostor pairs are accepted. A small
 * collection cannot show a rate of 1e-4 (it has too few pairs to hold even one false match at that rate): below
 * 10/far pairs the threshold is also held above the normal-tail quantile of its impostor scores, since its
 * highest impostor alone is a sample of one and the next stranger may score higher.
 */
export function thresholdAtFar(impostors: Float32Array, far: number): number {
  const allowed = Math.floor(far * impostors.length);
  const empirical = (impostors[allowed] ?? -1) + 1e-6;
  if (impostors.length === 0 || impostors.length >= 10 / far) return empirical;
  let sum = 0,
    sumSq = 0;
  for (const s of impostors) {
    sum += s;
    sumSq += s * s;
  }
  const mean = sum / impostors.length;
  const sd = Math.sqrt(Math.max(0, sumSq / impostors.length - mean * mean));
  return Math.max(empirical, mean + normalQuantile(1 - far) * sd);
}

export function farAt(impostors: Float32Array, threshold: number): number {
  let n = 0;
  while (n < impostors.length && impostors[n]! >= threshold) n++;
  return impostors.length ? n / impostors.length : 0;
}

export interface OperatingPointReport {
  far: number;
  /** The highest of the collections' thresholds: none of them exceeds `far` there. */
  threshold: number;
  collections: {
    name: string;
    faces: number;
    impostorPairs: number;
    thresholdAtFar: number;
    /** Whether the collection has enough pairs (≥ 10/far) to measure the target rate, else the normal tail. */
    measurable: boolean;
    farAtChosen: number;
    falseMatchesAtChosen: number;
    skipped: string[];
    top: { a: string; b: string; score: number }[];
  }[];
}

export function chooseOperatingPoint(collections: Collection[], far: number): OperatingPointReport {
  const per = collections.map((c) => ({ c, t: thresholdAtFar(c.impostors, far) }));
  const threshold = Math.max(...per.map((p) => p.t));
  return {
    far,
    threshold,
    collections: per.map(({ c, t }) => ({
      name: c.name,
      faces: c.faces,
      impostorPairs: c.impostors.length,
      thresholdAtFar: t,
      measurable: c.impostors.length >= 10 / far,
      farAtChosen: farAt(c.impostors, threshold),
      falseMatchesAtChosen: Math.round(farAt(c.impostors, threshold) * c.impostors.length),
      skipped: c.skipped,
      top: c.top,
    })),
  };
}
