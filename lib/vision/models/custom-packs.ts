import { createHash } from "node:crypto";
import path from "node:path";
import { ConfigError, type Config } from "../../config/index.ts";
import type { Point } from "../../geometry/index.ts";
import {
  DEFAULT_PACK,
  PACKS,
  registerDeclaredModel,
  scaleTemplate,
  type ModelSpec,
  type Pack,
} from "./registry.ts";

/**
 * Packs a site brings (`models.packs`): its own ONNX detector and/or embedder, described in config with what the
 * registry says about a built-in model (input size, colour order, normalisation, template, output size), the
 * parts it does not declare taken from a built-in base pack. Vigil ships only permissive weights; a site that
 * holds a licence for a stronger model points Vigil at its file, which is checked by sha256 and used in place.
 */

type Declaration = Config["models"]["packs"][string];
type DeclaredEmbedder = NonNullable<Declaration["embedder"]>;
type DeclaredDetector = NonNullable<Declaration["detector"]>;

export interface DeclaredPack {
  pack: Pack;
  /** The models the declaration brings (not the base pack's). */
  models: ModelSpec[];
}

/**
 * A short digest of everything that shapes a model's output (file, input scaling, template), so a model id
 * changes whenever its vectors would: vectors of different models are never compared, and a replaced file or a
 * new template must not be matched against the old one's enrolments.
 */
function fingerprint(parts: unknown): string {
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex").slice(0, 8);
}

export function embedderTemplate(e: DeclaredEmbedder): Point[] {
  return typeof e.template === "string"
    ? scaleTemplate(e.template, e.input.width, e.input.height)
    : e.template.map(([x, y]) => [x, y] as Point);
}

function embedderSpec(name: string, e: DeclaredEmbedder, licence: string): ModelSpec {
  const file = path.resolve(e.path);
  const template = embedderTemplate(e);
  const id = `${name}-embedder-${fingerprint([e.sha256, e.input, template, e.outputDim, e.fixes])}`;
  return {
    id,
    task: "embed",
    format: "onnx",
    files: { model: { sha256: e.sha256 } },
    // Used in place, the artifact is the file; rebuilt with fixes, it is whatever the fixes make of it.
    artifactSha256: e.fixes.length ? "" : e.sha256,
    sources: [{ kind: "file", files: { model: file } }],
    fixes: e.fixes,
    input: { width: e.input.width, height: e.input.height, ...pixels(e.input) },
    template,
    outputDim: e.outputDim,
    maxBatch: e.maxBatch,
    licence,
    notes: `declared in models.packs.${name} (${file}); threshold from vigil eval lfw --calibrate`,
  };
}

function detectorSpec(name: string, d: DeclaredDetector, licence: string): ModelSpec {
  const file = path.resolve(d.path);
  return {
    id: `${name}-detector-${fingerprint([d.sha256, d.decoder, d.input, d.fixes])}`,
    task: "detect",
    decoder: d.decoder,
    format: "onnx",
    files: { model: { sha256: d.sha256 } },
    artifactSha256: d.fixes.length ? "" : d.sha256,
    sources: [{ kind: "file", files: { model: file } }],
    fixes: d.fixes,
    input: {
      ...(d.input.width ? { width: d.input.width, height: d.input.height } : {}),
      ...(d.decoder === "yunet" ? { stride: d.input.stride ?? 32 } : {}),
      ...pixels(d.input),
    },
    maxBatch: 1,
    licence,
    notes: `declared in models.packs.${name} (${file})`,
  };
}

const pixels = (i: { channels: "bgr" | "rgb"; mean: number[]; std: number[] }) => ({
  channels: i.channels,
  mean: [i.mean[0]!, i.mean[1]!, i.mean[2]!] as [number, number, number],
  std: [i.std[0]!, i.std[1]!, i.std[2]!] as [number, number, number],
});

/** A declaration as the registry's Pack plus the ModelSpecs it brings; the base pack fills the rest. */
export function declaredPack(name: string, decl: Declaration): DeclaredPack {
  const base = PACKS[decl.base];
  if (!base) throw new ConfigError(`models.packs.${name}.base: ${decl.base} is not a built-in pack`);
  const detector = decl.detector && detectorSpec(name, decl.detector, decl.licence);
  const embedder = decl.embedder && embedderSpec(name, decl.embedder, decl.licence);
  // UltraFace finds boxes only; its five points come from the 68-point landmark model of the faceplugin pack.
  const landmarks = detector
    ? detector.decoder === "ultraface"
      ? base.landmarks
      : undefined
    : base.landmarks;
  if (detector?.decoder === "ultraface" && !landmarks) {
    throw new ConfigError(
      `models.packs.${name}: an UltraFace detector needs a landmark model; set base to a pack with one (faceplugin-npm)`,
    );
  }
  const pack: Pack = {
    id: name,
    detector: detector?.id ?? base.detector,
    ...(landmarks ? { landmarks } : {}),
    embedder: embedder?.id ?? base.embedder,
    description:
      decl.description ??
      `declared: ${detector ? `detector ${decl.detector!.path}` : `${base.detector} (from ${base.id})`}, ` +
        `${embedder ? `embedder ${decl.embedder!.path}` : `${base.embedder} (from ${base.id})`}`,
    licence: decl.licence,
    declared: true,
  };
  return { pack, models: [detector, embedder].filter((m): m is ModelSpec => !!m) };
}

/**
 * The pack named `id` (`auto` means the default): a built-in one, or one declared in config, whose models are
 * then registered so lookups by model id find them.
 */
export function packFor(config: Config, id: string): Pack {
  const wanted = id === "auto" ? DEFAULT_PACK : id;
  const builtIn = PACKS[wanted];
  if (builtIn) return builtIn;
  const decl = config.models.packs[wanted];
  if (!decl) {
    throw new ConfigError(
      `unknown pack ${wanted}; built-in: ${Object.keys(PACKS).join(", ")}; declared in models.packs: ` +
        `${Object.keys(config.models.packs).join(", ") || "none"}`,
    );
  }
  const { pack, models } = declaredPack(wanted, decl);
  for (const spec of models) registerDeclaredModel(spec);
  return pack;
}

/** Built-in packs, then the declared ones (`vigil models list`). */
export function allPacks(config: Config): Pack[] {
  return [...Object.values(PACKS), ...Object.keys(config.models.packs).map((name) => packFor(config, name))];
}

/**
 * The declared model with this id and the pack declaring it, from config alone (no file is read): processes that
 * never load a model (the API, `vigil search`) still find a declared embedder's calibration by its vectors' id.
 */
export function declaredModel(
  modelId: string,
  config: Config,
): { pack: string; spec: ModelSpec; licence: string } | undefined {
  for (const [name, decl] of Object.entries(config.models.packs)) {
    const spec = declaredPack(name, decl).models.find((m) => m.id === modelId);
    if (spec) return { pack: name, spec, licence: decl.licence };
  }
  return undefined;
}

/** The sha256 of a declared model's file as declared (what its calibration is keyed by). */
export const declaredSha256 = (spec: ModelSpec): string => spec.files.model!.sha256;
