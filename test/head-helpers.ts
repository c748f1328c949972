import { readdirSync, symlinkSync } from "node:fs";
import path from "node:path";
import { tempDir } from "./helpers.ts";

/**
 * A model cache of the test's own beside links to the project's pulled base models (each still checked against
 * its registered sha256 when loaded), so a test never writes a head into the real cache.
 */
export function cacheWithBaseModels(): string {
  const dir = tempDir("vigil-models-");
  const real = path.resolve(".vigil", "models");
  for (const f of readdirSync(real).filter((f) => f.endsWith(".onnx")))
    symlinkSync(path.join(real, f), path.join(dir, f));
  return dir;
}

/** The first identities of an LFW-style folder with at least four photos, linked into a training folder. */
export function lfwSubset(lfw: string, identities: number): string {
  const dir = tempDir("vigil-train-data-");
  const chosen = readdirSync(lfw)
    .sort()
    .filter((id) => readdirSync(path.join(lfw, id)).length >= 4)
    .slice(0, identities);
  for (const id of chosen) symlinkSync(path.join(lfw, id), path.join(dir, id));
  return dir;
}
