import { modelCacheDir, type Config } from "../../lib/config/index.ts";
import { listHeads } from "../../lib/vision/models/heads.ts";
import { modelStoreFor } from "../../lib/vision/inference/vision.ts";
import { MODELS, packModels, DEFAULT_PACK, FALLBACK_PACK } from "../../lib/vision/models/registry.ts";
import { allPacks, packFor } from "../../lib/vision/models/custom-packs.ts";
import { logToStderr, UsageError } from "../context.ts";
import { describeSource } from "../../lib/vision/models/model-store.ts";

export function listModels(config: Config) {
  const store = modelStoreFor(config, logToStderr);
  for (const pack of allPacks(config)) {
    const tag =
      pack.id === DEFAULT_PACK
        ? " (default)"
        : pack.id === FALLBACK_PACK
          ? " (npm-only fallback)"
          : pack.declared
            ? " (declared in models.packs)"
            : "";
    console.log(`pack ${pack.id}${tag}: ${pack.description}`);
    if (pack.declared) console.log(`  licence: ${pack.licence}`);
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
  listTrainedHeads(config);
}

/** Heads made by `vigil train`, with their lineage: base model, loss, data, calibrated threshold. */
function listTrainedHeads(config: Config) {
  const heads = listHeads(modelCacheDir(config));
  if (heads.length === 0) return;
  console.log(`trained heads (vigil train; use one with models.head):`);
  for (const h of heads) {
    const active = config.models.head === h.id ? " (active: models.head)" : "";
    console.log(
      `  ${h.id}${active}: ${h.base}${h.flip ? " (flip)" : ""} → ${h.layers.map((l) => `${l.in}→${l.out}`).join(" → ")}, ${h.dim}-D, loss ${h.loss} (s ${h.hyperParameters.s}, m ${h.hyperParameters.m}); trained ${h.trainedAt}`,
    );
    console.log(
      `    data: ${h.data.identities} identities, ${h.data.images} images (${h.data.trainIdentities} trained on, ${h.data.valIdentities} held out) from ${h.data.source}`,
    );
    console.log(
      `    threshold ${h.calibration.threshold.toFixed(4)} at FAR ${h.calibration.far}: ${h.calibration.source}; weights sha256 ${h.weights.sha256}`,
    );
  }
}

function selected(config: Config, pack: string | undefined) {
  if (!pack) {
    // Every built-in model, then the declared packs' own files.
    const all = [...Object.values(MODELS), ...allPacks(config).flatMap(packModels)];
    return [...new Map(all.map((m) => [m.id, m])).values()];
  }
  try {
    return packModels(packFor(config, pack));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export async function pullModels(config: Config, pack: string | undefined) {
  const store = modelStoreFor(config, logToStderr);
  const failures: string[] = [];
  for (const spec of selected(config, pack)) {
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
  for (const spec of selected(config, pack)) {
    const r = store.verify(spec);
    if (!r.ok) bad++;
    console.log(`${spec.id}: ${r.ok ? "ok" : "FAILED"} ${r.detail}`);
  }
  return bad;
}
