import { createHash, randomBytes } from "node:crypto";
import { mkdir, open, readdir, readFile, rename, stat, unlink } from "node:fs/promises";
import path from "node:path";
import { TransientError } from "../runtime/errors.ts";

/**
 * Face crops (small JPEGs) of sightings, alerts and enrolled photos, kept apart from the records that point to them: a vector
 * database's payload is the wrong place for media at millions of sightings. Keys come from the record's id
 * (`cropKey`), so a replayed record overwrites its crop instead of adding a second one.
 */
export interface CropStore {
  /** Where the crops go, for messages: a folder or `s3://bucket/prefix`. */
  readonly location: string;
  /** Writes or replaces the crop under `key`. */
  put(key: string, bytes: Uint8Array): Promise<void>;
  /** Undefined when there is no crop under `key`. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Deletes the crops under `keys`; keys with nothing under them are not an error (retention may run twice). */
  delete(keys: string[]): Promise<void>;
  /**
   * Every crop's key and size, in no set order (a backup's listing of what the store held); only keys under
   * `prefix` (a folder of keys, ending in `/`) when given.
   */
  list(prefix?: string): AsyncIterable<{ key: string; size: number }>;
  /** Fails with a clear error when the store cannot be used at all (no bucket, credentials refused). */
  check(): Promise<void>;
  close(): void;
}

/** Sightings' and alerts' faces, and the aligned faces of enrolled photos (`faces`, keyed by face id). */
export type CropKind = "sightings" | "alerts" | "faces";

/**
 * A crop store that cannot do what was asked for a reason waiting will not cure (credentials refused, no such
 * bucket, a folder that is not writable). A store that is away throws a `TransientError` instead.
 */
export class CropStoreError extends Error {
  override name = "CropStoreError";
}

/** Bytes of an id that stay readable in a key; every other byte is written %XX, so the mapping is one to one. */
const SAFE_BYTE = /[A-Za-z0-9_.-]/;
/** File names are at most 255 bytes; longer ids are named by their hash (`~` never starts an encoded id). */
const MAX_NAME = 180;

/**
 * The crop's key for a record id: `<kind>/<2 hex of sha256(id)>/<id, percent-encoded>.jpg`. The hash level keeps
 * a folder to a few thousand files per directory at a million crops, and spreads keys over S3's partitions.
 */
export function cropKey(kind: CropKind, id: string): string {
  const { name, hash } = keyName(id);
  return `${kind}/${hash.slice(0, 2)}/${name}.jpg`;
}

/** An id as one key segment (one to one; see cropKey), with its hash. */
export function keyName(id: string): { name: string; hash: string } {
  const hash = createHash("sha256").update(id).digest("hex");
  let name = "";
  for (const byte of Buffer.from(id, "utf8")) {
    const ch = String.fromCharCode(byte);
    name += byte < 0x80 && SAFE_BYTE.test(ch) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  // "." and ".." must never name a file, and hidden files are easy to miss.
  if (name.startsWith(".")) name = `%2E${name.slice(1)}`;
  if (name.length === 0 || name.length > MAX_NAME) name = `~${hash}`;
  return { name, hash };
}

const KEY = /^[A-Za-z0-9_.~%-]+(\/[A-Za-z0-9_.~%-]+)*$/;

/** Keys are relative paths of plain segments: nothing a folder store could resolve outside its root. */
export function checkKey(key: string): string {
  if (!KEY.test(key) || key.split("/").some((s) => s === "." || s === ".."))
    throw new CropStoreError(`not a crop key: ${JSON.stringify(key)}`);
  return key;
}

/** Runs `fn` over `items`, at most `limit` at a time; the first failure is thrown once all have settled. */
export async function eachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>) {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.err;
}

/** Puts several crops at once (the records of one batch). */
export function putCrops(store: CropStore, crops: [key: string, bytes: Uint8Array][]): Promise<void> {
  return eachLimited(crops, 16, ([key, bytes]) => store.put(key, bytes));
}

/**
 * Errors of a folder that is away or full (a network mount gone, a disk filled), not of the request: the pipeline
 * redelivers rather than dead-letters.
 */
const TRANSIENT_FS = new Set([
  "EIO",
  "ENOSPC",
  "EDQUOT",
  "ESTALE",
  "EAGAIN",
  "EBUSY",
  "EMFILE",
  "ENFILE",
  "ETIMEDOUT",
  "ENOTCONN",
  "EHOSTDOWN",
]);

/**
 * Crops as files under a folder (`<dataDir>/crops` by default): for the Qdrant store on one machine, or on a
 * volume the match replicas share. Writes go to a temporary file that is synced and then renamed over the key, so
 * a reader or a crash never leaves half a JPEG, and a replay replaces the file whole.
 */
export class FolderCropStore implements CropStore {
  readonly dir: string;
  private readonly made = new Set<string>();
  private seq = 0;
  private readonly tag = `${process.pid}.${randomBytes(3).toString("hex")}`;

  constructor(dir: string) {
    this.dir = path.resolve(dir);
  }

  get location() {
    return this.dir;
  }

  private file(key: string) {
    return path.join(this.dir, ...checkKey(key).split("/"));
  }

  private fail(err: unknown, action: string): Error {
    const e = err as NodeJS.ErrnoException;
    const message = `crop folder ${this.dir}: ${action} failed: ${e.message}`;
    if (typeof e.code === "string" && TRANSIENT_FS.has(e.code))
      return new TransientError(message, { cause: err });
    return new CropStoreError(message, { cause: err });
  }

  async put(key: string, bytes: Uint8Array) {
    const file = this.file(key);
    const dir = path.dirname(file);
    const tmp = `${file}.${this.tag}.${this.seq++}.tmp`;
    try {
      if (!this.made.has(dir)) {
        await mkdir(dir, { recursive: true });
        this.made.add(dir);
      }
      const handle = await open(tmp, "w");
      try {
        await handle.writeFile(bytes);
        // Without it, a machine crash right after the rename can leave an empty file under the key.
        await handle.datasync();
      } finally {
        await handle.close();
      }
      await rename(tmp, file);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw this.fail(err, `writing ${key}`);
    }
  }

  async get(key: string) {
    try {
      return new Uint8Array(await readFile(this.file(key)));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") return undefined;
      throw this.fail(err, `reading ${key}`);
    }
  }

  async delete(keys: string[]) {
    const files = keys.map((k) => this.file(k));
    await eachLimited(files, 32, async (file) => {
      try {
        await unlink(file);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== "ENOENT" && code !== "ENOTDIR")
          throw this.fail(err, `deleting ${path.relative(this.dir, file)}`);
      }
    });
  }

  async *list(prefix = ""): AsyncGenerator<{ key: string; size: number }> {
    const under = prefix ? this.file(prefix.replace(/\/+$/, "")) : this.dir;
    let entries: string[];
    try {
      entries = (await readdir(under, { recursive: true })).map((rel) =>
        path.relative(this.dir, path.join(under, rel)),
      );
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") return;
      throw this.fail(err, "listing");
    }
    for (const rel of entries.sort()) {
      // A write in progress (`<key>.<tag>.<n>.tmp`) or the writability probe is not a crop.
      if (rel.endsWith(".tmp") || path.basename(rel).startsWith(".check.")) continue;
      const info = await stat(path.join(this.dir, rel)).catch(() => undefined);
      if (info?.isFile()) yield { key: rel.split(path.sep).join("/"), size: info.size };
    }
  }

  async check() {
    const probe = `.check.${this.tag}`;
    try {
      await mkdir(this.dir, { recursive: true });
      const handle = await open(path.join(this.dir, probe), "w");
      await handle.close();
      await unlink(path.join(this.dir, probe));
    } catch (err) {
      throw this.fail(err, "writing a file");
    }
  }

  close() {}
}
