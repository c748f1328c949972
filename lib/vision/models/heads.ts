import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { l2normalize } from "../../geometry/index.ts";
import { MODELS } from "./registry.ts";

/**
 * A trained projection head: what `vigil train` makes and the embed stage applies after the base embedder. At run
 * time it is plain arithmetic (affine layers, ReLU between them, then L2 normalisation): batch norm is folded into
 * the affine layer it follows, so neither tfjs nor any training code is loaded by `vigil run`.
 *
 * On disk, under the model cache: `heads/<id>/head.json` (this manifest) and `heads/<id>/weights.bin` (float32,
 * little-endian, each layer's matrix row-major [out][in] then its bias), checked against the manifest's sha256.
 */

export interface HeadLayer {
  in: number;
  out: number;
  /** ReLU after this layer (hidden layers); the last layer has none. */
  relu: boolean;
}

export interface HeadManifest {
  /** The head's model id: vectors it makes are stored and matched under this id, never the base's. */
  id: string;
  kind: "head";
  /** The embedder whose L2-normalised output (with the flip, when `flip`) the head takes. */
  base: string;
  flip: boolean;
  loss: string;
  /** Every hyper-parameter of the run that made it. */
  hyperParameters: Record<string, number | string | boolean>;
  dim: number;
  layers: HeadLayer[];
  weights: { file: string; sha256: string; bytes: number };
  /** The match threshold at a target false-accept rate, measured on identities the head was not trained on. */
  calibration: { threshold: number; far: number; source: string };
  data: {
    source: string;
    identities: number;
    images: number;
    trainIdentities: number;
    valIdentities: number;
  };
  trainedAt: string;
}

export interface Head {
  manifest: HeadManifest;
  /** Per layer: the matrix [out][in] row-major, and the bias. */
  params: { matrix: Float32Array; bias: Float32Array }[];
}

export const HEAD_ID = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;

export const headsDir = (modelCacheDir: string) => path.join(modelCacheDir, "heads");
const headDir = (modelCacheDir: string, id: string) => path.join(headsDir(modelCacheDir), id);

/** A head that cannot be used as asked (unknown id, damaged files, wrong base): a clear message, no stack. */
export class HeadError extends Error {
  override name = "HeadError";
}

/** Training data that cannot train a head (missing, too few identities): a clear message, no stack. */
export class TrainingDataError extends Error {
  override name = "TrainingDataError";
}

export function checkHeadId(id: string): string {
  if (!HEAD_ID.test(id))
    throw new HeadError(
      `head id "${id}" must be letters, digits, '.', '_', '+' or '-' (not starting with one)`,
    );
  // A head's vectors carry its id; under a built-in model's id they would be matched against that model's.
  if (MODELS[id]) throw new HeadError(`head id "${id}" is a built-in model's id: choose another`);
  return id;
}

/** The head's vectors for L2-normalised base vectors: affine layers (ReLU between), then L2 normalisation. */
export function applyHead(head: Head, vectors: Float32Array[]): Float32Array[] {
  return vectors.map((v) => {
    let x = v;
    head.manifest.layers.forEach((layer, k) => {
      if (x.length !== layer.in)
        throw new HeadError(`${head.manifest.id} takes ${layer.in}-D input, got ${x.length}-D`);
      const { matrix, bias } = head.params[k]!;
      const y = new Float32Array(layer.out);
      for (let o = 0; o < layer.out; o++) {
        let sum = bias[o]!;
        const row = o * layer.in;
        for (let i = 0; i < layer.in; i++) sum += matrix[row + i]! * x[i]!;
        y[o] = layer.relu && sum < 0 ? 0 : sum;
      }
      x = y;
    });
    return l2normalize(x);
  });
}

function packWeights(head: Head): Uint8Array {
  const total = head.params.reduce((s, p) => s + p.matrix.length + p.bias.length, 0);
  const all = new Float32Array(total);
  let at = 0;
  for (const p of head.params) {
    all.set(p.matrix, at);
    at += p.matrix.length;
    all.set(p.bias, at);
    at += p.bias.length;
  }
  // Float32Array is little-endian on every platform Node runs on; the sha256 pins the bytes anyway.
  return new Uint8Array(all.buffer);
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** Writes the head under the model cache (atomically: a half-written head is never loaded). */
export function saveHead(
  modelCacheDir: string,
  head: Omit<Head, "manifest"> & { manifest: Omit<HeadManifest, "weights"> },
  options: { overwrite?: boolean } = {},
): HeadManifest {
  const id = checkHeadId(head.manifest.id);
  const dir = headDir(modelCacheDir, id);
  if (existsSync(dir) && !options.overwrite)
    throw new HeadError(`a head named ${id} already exists (${dir}); choose another --out or remove it`);
  const bytes = packWeights(head as Head);
  const manifest: HeadManifest = {
    ...head.manifest,
    weights: { file: "weights.bin", sha256: sha256(bytes), bytes: bytes.length },
  };
  const partial = `${dir}.${process.pid}.partial`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  writeFileSync(path.join(partial, "weights.bin"), bytes);
  writeFileSync(path.join(partial, "head.json"), JSON.stringify(manifest, null, 2) + "\n");
  rmSync(dir, { recursive: true, force: true });
  renameSync(partial, dir);
  return manifest;
}

export function headExists(modelCacheDir: string, id: string): boolean {
  return existsSync(path.join(headDir(modelCacheDir, id), "head.json"));
}

/** Reads and checks a head: its weights' sha256 and their size against the layers the manifest declares. */
export function loadHead(modelCacheDir: string, id: string): Head {
  const dir = headDir(modelCacheDir, checkHeadId(id));
  const manifestFile = path.join(dir, "head.json");
  if (!existsSync(manifestFile)) {
    const known = listHeads(modelCacheDir).map((h) => h.id);
    throw new HeadError(
      `no trained head ${id} in ${headsDir(modelCacheDir)} (known: ${known.length ? known.join(", ") : "none"}; make one with vigil train)`,
    );
  }
  const manifest = JSON.parse(readFileSync(manifestFile, "utf8")) as HeadManifest;
  if (manifest.kind !== "head" || manifest.id !== id || !Array.isArray(manifest.layers))
    throw new HeadError(`${manifestFile} is not the manifest of head ${id}`);
  const bytes = readFileSync(path.join(dir, manifest.weights.file));
  const actual = sha256(bytes);
  if (actual !== manifest.weights.sha256)
    throw new HeadError(`${id}: weights have sha256 ${actual}, the manifest says ${manifest.weights.sha256}`);
  const floats = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  const params: Head["params"] = [];
  let at = 0;
  for (const layer of manifest.layers) {
    const matrix = floats.slice(at, at + layer.in * layer.out);
    at += layer.in * layer.out;
    const bias = floats.slice(at, at + layer.out);
    at += layer.out;
    params.push({ matrix, bias });
  }
  if (at !== floats.length || manifest.layers.at(-1)?.out !== manifest.dim)
    throw new HeadError(`${id}: weights hold ${floats.length} values, the layers declare ${at}`);
  return { manifest, params };
}

/** Every head in the cache, newest first; unreadable manifests are skipped (listing must not fail on one). */
export function listHeads(modelCacheDir: string): HeadManifest[] {
  const dir = headsDir(modelCacheDir);
  if (!existsSync(dir)) return [];
  const out: HeadManifest[] = [];
  for (const id of readdirSync(dir)) {
    const file = path.join(dir, id, "head.json");
    if (!existsSync(file)) continue;
    try {
      out.push(JSON.parse(readFileSync(file, "utf8")) as HeadManifest);
    } catch {
      // a manifest being written or damaged: `loadHead` says what is wrong when it is asked for
    }
  }
  return out.sort((a, b) => b.trainedAt.localeCompare(a.trainedAt));
}
