import {
  existsSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  statSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";

/**
 * Base-model embeddings of image files kept on disk between runs, so evaluations and `vigil train` detect, align
 * and embed each photo once. An entry is keyed by model id, flip, the file's absolute path, size and mtime: a
 * changed photo, another model or another flip setting is simply a miss. Links are followed (one photo, one entry).
 */
export interface CachedFace {
  vector: Float32Array;
  /** Whether the detector found the face (otherwise it was aligned from a fallback layout). */
  detected: boolean;
  /** The live quality gate's reasons; empty when the face passes it. */
  gateReasons: string[];
}

interface Stored {
  v: string;
  d: boolean;
  g: string[];
}

export class EmbeddingCache {
  private entries: Record<string, Stored> = {};
  private dirty = false;

  constructor(
    private readonly file: string,
    private readonly modelId: string,
    private readonly flip: boolean,
  ) {
    if (existsSync(file)) {
      try {
        this.entries = JSON.parse(readFileSync(file, "utf8")) as Record<string, Stored>;
      } catch {
        // a damaged cache is only a cache: start again
        this.entries = {};
      }
    }
  }

  /** `<dataDir>/cache/embeddings/<model>.json`. */
  static inDataDir(dataDir: string, modelId: string, flip: boolean): EmbeddingCache {
    return new EmbeddingCache(path.resolve(dataDir, "cache", "embeddings", `${modelId}.json`), modelId, flip);
  }

  private key(file: string): string {
    const s = statSync(file);
    return `${this.modelId}|flip=${this.flip}|${realpathSync(file)}|${s.size}|${Math.floor(s.mtimeMs)}`;
  }

  get(file: string): CachedFace | undefined {
    const e = this.entries[this.key(file)];
    if (!e) return undefined;
    const bytes = Buffer.from(e.v, "base64");
    return {
      vector: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)),
      detected: e.d,
      gateReasons: e.g,
    };
  }

  set(file: string, face: CachedFace) {
    const bytes = Buffer.from(face.vector.buffer, face.vector.byteOffset, face.vector.byteLength);
    this.entries[this.key(file)] = { v: bytes.toString("base64"), d: face.detected, g: face.gateReasons };
    this.dirty = true;
  }

  save() {
    if (!this.dirty) return;
    mkdirSync(path.dirname(this.file), { recursive: true });
    const partial = `${this.file}.${process.pid}.partial`;
    writeFileSync(partial, JSON.stringify(this.entries));
    renameSync(partial, this.file);
    this.dirty = false;
  }
}
