import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The nearest folder at or above `start` holding Vigil's package.json (name "vigil"), or undefined. Other
 * package.json files on the way (a nested tool's) are passed over.
 */
export function findCheckoutRoot(start: string): string | undefined {
  let dir = path.resolve(start);
  for (;;) {
    const manifest = path.join(dir, "package.json");
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, "utf8")) as { name?: unknown }).name === "vigil") return dir;
      } catch {
        // Not JSON: not ours; keep walking.
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

let cached: string | undefined;

/**
 * The checkout's root (or the installed package's, or the image's /app): the folder whose package.json is
 * Vigil's, found by walking up from this module. Counting folders above a module instead breaks once the code
 * is compiled into dist/ (one folder deeper), so every lookup of `.vigil/`, `bin/` or `dist/` by the code's own
 * location goes through here, from source and from the build alike.
 */
export function checkoutRoot(): string {
  if (cached) return cached;
  const here = path.dirname(fileURLToPath(import.meta.url));
  const root = findCheckoutRoot(here);
  if (!root)
    throw new Error(
      `cannot find Vigil's checkout: no package.json named "vigil" in ${here} or any folder above it`,
    );
  cached = root;
  return root;
}
