import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fetchNpmPackage } from "../../util/npm-package.ts";
import { applyGraphFixes } from "./graph-fixes.ts";
import { convertIrToOnnx } from "./ir-to-onnx.ts";
import type { ModelSource, ModelSpec } from "./registry.ts";

export class ChecksumError extends Error {
  override name = "ChecksumError";
}
export class ModelUnavailableError extends Error {
  override name = "ModelUnavailableError";
}

export const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

export interface ModelStoreOptions {
  cacheDir: string;
  mirror?: string;
  /** Source kinds that may be used; the rest are skipped (air-gapped sites keep only the mirror). */
  sources?: ModelSource["kind"][];
  log?: (line: string) => void;
}

export interface PulledModel {
  spec: ModelSpec;
  path: string;
  source: string;
}

/** Fetches, verifies, converts and caches models; the only code that touches model files on disk. */
export class ModelStore {
  constructor(private readonly options: ModelStoreOptions) {}

  artifactPath(spec: ModelSpec): string {
    return inPlaceFile(spec) ?? path.join(this.options.cacheDir, `${spec.id}.onnx`);
  }

  /** The cached ONNX file when present and intact; otherwise pulls it. */
  async ensure(spec: ModelSpec): Promise<PulledModel> {
    const declared = inPlaceFile(spec);
    if (declared) {
      checkDeclaredFile(spec, declared);
      return { spec, path: declared, source: `file ${declared}` };
    }
    const target = this.artifactPath(spec);
    if (existsSync(target)) {
      const actual = sha256(readFileSync(target));
      if (!spec.artifactSha256 || actual === spec.artifactSha256)
        return { spec, path: target, source: "cache" };
      this.log(`cached ${spec.id} has sha256 ${actual}, expected ${spec.artifactSha256}: fetching it again`);
    }
    return this.pull(spec);
  }

  async pull(spec: ModelSpec): Promise<PulledModel> {
    const failures: string[] = [];
    for (const source of spec.sources) {
      const label = describeSource(source);
      if (source.kind === "mirror" && !this.options.mirror) {
        failures.push(`${label}: no mirror directory configured`);
        continue;
      }
      // A declared file is the site's own and local: `models.sources` governs fetching, not it.
      if (source.kind !== "file" && this.options.sources && !this.options.sources.includes(source.kind)) {
        failures.push(`${label}: ${source.kind} sources are not enabled (models.sources)`);
        continue;
      }
      let raw: Record<string, Uint8Array>;
      try {
        raw = await this.fetchFiles(source);
      } catch (err) {
        failures.push(`${label}: ${(err as Error).message}`);
        continue;
      }
      for (const [name, bytes] of Object.entries(raw)) {
        const expected = spec.files[name]?.sha256;
        const actual = sha256(bytes);
        if (expected !== actual) {
          // A wrong file is worse than none: refuse it and say exactly what differed.
          if (source.kind === "file") throw declaredMismatch(spec, source.files[name]!, actual, expected!);
          throw new ChecksumError(
            `${spec.id}: file '${name}' from ${label} has sha256 ${actual}, expected ${expected}; refusing it`,
          );
        }
      }
      const artifact = this.build(spec, raw);
      const actual = sha256(artifact);
      if (spec.artifactSha256 && actual !== spec.artifactSha256) {
        throw new ChecksumError(
          `${spec.id}: converted model has sha256 ${actual}, expected ${spec.artifactSha256}; conversion is not reproducible`,
        );
      }
      const target = this.artifactPath(spec);
      mkdirSync(path.dirname(target), { recursive: true });
      const partial = `${target}.${process.pid}.partial`;
      writeFileSync(partial, artifact);
      renameSync(partial, target);
      this.log(`pulled ${spec.id} from ${label}`);
      return { spec, path: target, source: label };
    }
    throw new ModelUnavailableError(`${spec.id}: no source could be reached:\n  ${failures.join("\n  ")}`);
  }

  /** Re-hashes the cached artifact; reports rather than throws so `models verify` can list every model. */
  verify(spec: ModelSpec): { ok: boolean; detail: string } {
    const declared = inPlaceFile(spec);
    if (declared) {
      try {
        return {
          ok: true,
          detail: `sha256 ${checkDeclaredFile(spec, declared)} (${declared}, used in place)`,
        };
      } catch (err) {
        return { ok: false, detail: (err as Error).message };
      }
    }
    const target = this.artifactPath(spec);
    if (!existsSync(target)) return { ok: false, detail: "not pulled" };
    const actual = sha256(readFileSync(target));
    if (spec.artifactSha256 && actual !== spec.artifactSha256) {
      return { ok: false, detail: `sha256 ${actual} differs from the registry's ${spec.artifactSha256}` };
    }
    return { ok: true, detail: `sha256 ${actual}` };
  }

  private build(spec: ModelSpec, raw: Record<string, Uint8Array>): Uint8Array {
    if (spec.format === "openvino-ir") {
      const { model, report } = convertIrToOnnx(Buffer.from(raw.xml!).toString("utf8"), raw.bin!);
      this.log(
        `converted ${spec.id} from OpenVINO IR: ${report.nodes} nodes, ${report.flushedDenormals} denormals flushed`,
      );
      return model;
    }
    if (spec.fixes.length === 0) return raw.model!;
    const { model, report } = applyGraphFixes(raw.model!, spec.fixes);
    this.log(
      `fixed ${spec.id}: ${report.flushedDenormals} denormals flushed, ${report.reshapesFreed} reshapes freed`,
    );
    return model;
  }

  private async fetchFiles(source: ModelSource): Promise<Record<string, Uint8Array>> {
    const out: Record<string, Uint8Array> = {};
    if (source.kind === "mirror") {
      for (const [name, rel] of Object.entries(source.files)) {
        const file = path.join(this.options.mirror!, rel);
        if (!existsSync(file)) throw new Error(`${file} does not exist`);
        out[name] = readFileSync(file);
      }
    } else if (source.kind === "file") {
      for (const [name, file] of Object.entries(source.files)) {
        if (!existsSync(file)) throw new Error(`${file} does not exist`);
        out[name] = readFileSync(file);
      }
    } else if (source.kind === "url") {
      for (const [name, url] of Object.entries(source.files)) {
        const response = await fetch(url, { signal: AbortSignal.timeout(30_000) });
        if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
        out[name] = new Uint8Array(await response.arrayBuffer());
      }
    } else {
      const dir = await fetchNpmPackage(source.package, source.version, this.options.cacheDir);
      for (const [name, rel] of Object.entries(source.files)) out[name] = readFileSync(path.join(dir, rel));
    }
    return out;
  }

  private log(line: string) {
    this.options.log?.(line);
  }
}

export function describeSource(source: ModelSource): string {
  if (source.kind === "npm") return `npm ${source.package}@${source.version}`;
  if (source.kind === "file") return `file ${Object.values(source.files).join(", ")}`;
  if (source.kind === "url") return `URL ${Object.values(source.files)[0]}`;
  return `mirror ${Object.values(source.files).join(", ")}`;
}

/**
 * A declared ONNX file that needs no graph fix is run where it lies: a site's licensed weights are not copied
 * into Vigil's cache. One with fixes is rebuilt into the cache like a fetched model (its id carries its sha256).
 */
function inPlaceFile(spec: ModelSpec): string | undefined {
  const source = spec.sources[0];
  if (spec.sources.length !== 1 || source?.kind !== "file") return undefined;
  if (spec.format !== "onnx" || spec.fixes.length > 0) return undefined;
  return source.files.model;
}

function declaredMismatch(spec: ModelSpec, file: string, actual: string, expected: string) {
  return new ChecksumError(
    `${spec.id}: ${file} has sha256 ${actual}, but its declaration in models.packs says ${expected}; ` +
      `refusing it (a different file than the one declared: fix the path, or the sha256 if the file was updated on purpose)`,
  );
}

/** Hashes computed in this process, by file identity: workers and reloads do not re-read a large model. */
const hashed = new Map<string, string>();

/** Hashes a declared file against its declaration; returns the sha256 or throws naming the file and both hashes. */
function checkDeclaredFile(spec: ModelSpec, file: string): string {
  if (!existsSync(file)) {
    throw new ModelUnavailableError(`${spec.id}: declared file ${file} does not exist (models.packs)`);
  }
  const st = statSync(file);
  const key = `${file}:${st.ino}:${st.size}:${st.mtimeMs}`;
  const actual = hashed.get(key) ?? sha256(readFileSync(file));
  hashed.set(key, actual);
  const expected = spec.files.model?.sha256 ?? "";
  if (actual !== expected) throw declaredMismatch(spec, file, actual, expected);
  return actual;
}
