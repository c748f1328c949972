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

/** `./name.ts` beside `base` when running from source, `./name.js` when running the compiled build. */
export function siblingModule(name: string, base: string): URL {
  return new URL(`./${name}${base.endsWith(".ts") ? ".ts" : ".js"}`, base);
}

/**
 * Starts a worker thread on a module. From the compiled build (plain JS) it is an ordinary worker; from source
 * the worker does not inherit tsx's loader, so a two-line bootstrap registers it first (~130 MB more per
 * worker, which is why production runs the build).
 */
export function startTsWorker(entry: URL, workerData: unknown): Worker {
  if (entry.pathname.endsWith(".js")) return new Worker(entry, { workerData });
  const boot =
    `import(${JSON.stringify(tsxApiUrl())}).then((m) => { m.register(); ` +
    `return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(boot, { eval: true, workerData });
}
