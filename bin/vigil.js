#!/usr/bin/env node
// Runs the compiled build (dist/, `npm run build`) when it is newer than every source file, else the
// TypeScript itself through tsx's loader, so `npx vigil` works from a checkout with no build step.
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const stamp = path.join(root, "dist", ".build-stamp");

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

const built =
  process.env.VIGIL_FROM_SOURCE !== "1" &&
  existsSync(stamp) &&
  statSync(stamp).mtimeMs >=
    Math.max(...["lib", "services", "cli"].map((d) => newestSource(path.join(root, d))));
if (built) {
  await import("../dist/cli/main.js");
} else {
  // A benchmark's figures depend on which one runs (tsx's loader costs CPU of its own): say so when dist/ exists
  // but is older than the sources.
  if (process.argv[2] === "bench" && process.env.VIGIL_FROM_SOURCE !== "1" && existsSync(stamp))
    process.stderr.write(
      "vigil: dist/ is older than the sources: running TypeScript through tsx (npm run build)\n",
    );
  const { register } = await import("tsx/esm/api");
  register();
  await import("../cli/main.ts");
}
