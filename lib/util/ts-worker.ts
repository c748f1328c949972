import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";

let tsxApi: string | undefined;

/** tsx's ESM register API, found through its package exports (require.resolve would give the CJS build). */
function tsxApiUrl(): string {
  if (tsxApi) return tsxApi;
  const manifest = createRequire(import.meta.url).resolve("tsx/package.json");
  const pkg = JSON.parse(readFileSync(manifest, "utf8")) as {
    exports: Record<string, { import: { default: string } }>;
  };
  tsxApi = pathToFileURL(path.join(path.dirname(manifest), pkg.exports["./esm/api"]!.import.default)).href;
  return tsxApi;
}

/**
 * Starts a worker thread whose entry is a TypeScript module. The product runs through tsx's loader with no
 * build step; a worker does not inherit the loader, so a two-line bootstrap registers it before importing.
 */
export function startTsWorker(entry: URL, workerData: unknown): Worker {
  const boot =
    `import(${JSON.stringify(tsxApiUrl())}).then((m) => { m.register(); ` +
    `return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(boot, { eval: true, workerData });
}
