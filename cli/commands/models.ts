import type { Config } from "../../lib/config/index.ts";
import { modelStoreFor } from "../../lib/vision/inference/vision.ts";
import { MODELS, PACKS, packModels, DEFAULT_PACK, FALLBACK_PACK } from "../../lib/vision/models/registry.ts";
import { logToStderr, UsageError } from "../context.ts";
import { describeSource } from "../../lib/vision/models/model-store.ts";

export function listModels(config: Config) {
  const store = modelStoreFor(config, logToStderr);
  for (const pack of Object.values(PACKS)) {
    const tag =
      pack.id === DEFAULT_PACK ? " (default)" : pack.id === FALLBACK_PACK ? " (npm-only fallback)" : "";
    console.log(`pack ${pack.id}${tag}: ${pack.description}`);
    for (const m of packModels(pack)) {
      const state = store.verify(m);
      console.log(
        `  ${m.id.padEnd(26)} ${m.task.padEnd(11)} ${m.format.padEnd(12)} ${state.ok ? "pulled" : state.detail}`,
      );
      console.log(
        `    input ${m.input.width ?? "any"}×${m.input.height ?? "any"} ${m.input.channels} mean ${m.input.mean.join("/")} std ${m.input.std.join("/")}; licence: ${m.licence}`,
      );
      console.log(`    sources: ${m.sources.map(describeSource).join(" | ")}`);
    }
  }
}

function selected(pack: string | undefined) {
  if (!pack) return Object.values(MODELS);
  const p = PACKS[pack];
  if (!p) throw new UsageError(`unknown pack ${pack}; known: ${Object.keys(PACKS).join(", ")}`);
  return packModels(p);
}

export async function pullModels(config: Config, pack: string | undefined) {
  const store = modelStoreFor(config, logToStderr);
  const failures: string[] = [];
  for (const spec of selected(pack)) {
    try {
      const pulled = await store.ensure(spec);
      console.log(`${spec.id}: ${pulled.path} (${pulled.source})`);
    } catch (err) {
      failures.push(`${spec.id}: ${(err as Error).message}`);
      console.log(`${spec.id}: FAILED ${(err as Error).message}`);
    }
  }
  return failures;
}

export function verifyModels(config: Config, pack: string | undefined) {
  const store = modelStoreFor(config, logToStderr);
  let bad = 0;
  for (const spec of selected(pack)) {
    const r = store.verify(spec);
    if (!r.ok) bad++;
    console.log(`${spec.id}: ${r.ok ? "ok" : "FAILED"} ${r.detail}`);
  }
  return bad;
}
