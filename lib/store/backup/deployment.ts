import { QdrantClient } from "@qdrant/js-client-rest";
import Database from "better-sqlite3";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { storePath, type Config } from "../../config/index.ts";
import { openCropStore } from "../open-store.ts";
import { PostgresApiStore } from "../postgres/api-store.ts";
import { openPool } from "../postgres/pool.ts";
import { writeJsonl, readJsonl } from "./jsonl.ts";
import { dumpRecords, restoreRecords } from "./records.ts";
import { dumpVectors, restoreVectors, type PointsProgress } from "./vectors.ts";

export const BACKUP_FORMAT = "vigil-backup/1";

/** What a backup holds, written last as `manifest.json`: a folder without it is an unfinished backup. */
export interface BackupManifest {
  format: typeof BACKUP_FORMAT;
  createdAt: string;
  /** PostgreSQL records as JSON lines (`records/`), with the schema version they were dumped at. */
  records: { schemaVersion: number; rows: Record<string, number> } | null;
  /** Qdrant collections (`vectors/`), by name without the deployment's prefix. */
  vectors: { prefix: string; collections: Record<string, number> } | null;
  /** SQLite files copied whole (`sqlite/`): the embedded store, or the API's records beside a Qdrant store. */
  sqlite: Record<string, string>;
  /**
   * The Qdrant store's crop store, listed (`crops.jsonl`): the crops stay where they are, and are not copied. Null
   * for the embedded store, whose crops are inside its SQLite file.
   */
  crops: { location: string; objects: number; bytes: number } | null;
}

export type Say = (line: string) => void;

/** A Qdrant client on the first of the configured nodes that answers. */
async function qdrantClient(config: Config): Promise<QdrantClient> {
  const urls = [config.store.qdrantUrl ?? []].flat();
  if (urls.length === 0) throw new Error("store.kind is qdrant but store.qdrantUrl is not set");
  let last: unknown;
  for (const url of urls) {
    const client = new QdrantClient({ url, apiKey: config.store.qdrantApiKey, checkCompatibility: false });
    try {
      await client.getCollections();
      return client;
    } catch (err) {
      last = err;
    }
  }
  throw new Error(`no Qdrant node answers (${urls.join(", ")}): ${(last as Error).message}`);
}

/** The SQLite files that hold this deployment's data, by the name they are kept under in a backup. */
function sqliteFiles(config: Config): Record<string, string> {
  const files: Record<string, string> = {};
  if (config.store.kind === "embedded") files["vigil.db"] = path.resolve(storePath(config));
  if (config.store.records.kind === "sqlite") {
    const api = path.resolve(
      config.api.authStorePath ??
        (config.store.kind === "qdrant" ? path.join(config.dataDir, "vigil-api.db") : storePath(config)),
    );
    if (!Object.values(files).includes(api)) files["vigil-api.db"] = api;
  }
  return files;
}

/**
 * Backs up a deployment into `dir` (new or empty): the records (PostgreSQL, as JSON lines from one snapshot),
 * the vectors (every Qdrant collection of the prefix, scrolled), SQLite files (online backups, consistent while
 * the processes write) and the crop store's listing. The manifest is written last.
 */
export async function backupDeployment(
  config: Config,
  dir: string,
  say: Say = () => {},
  bar?: PointsProgress,
): Promise<BackupManifest> {
  if (existsSync(dir) && readdirSync(dir).length > 0)
    throw new Error(`${dir} is not empty: a backup goes into a new or empty folder`);
  mkdirSync(dir, { recursive: true });
  let records: BackupManifest["records"] = null;
  if (config.store.records.kind === "postgres") {
    const pool = await openPool(config.store.records.url!);
    try {
      mkdirSync(path.join(dir, "records"));
      records = await dumpRecords(pool, path.join(dir, "records"), (t, n) => say(`records: ${t}, ${n} rows`));
    } finally {
      await pool.end();
    }
  }
  let vectors: BackupManifest["vectors"] = null;
  if (config.store.kind === "qdrant") {
    const client = await qdrantClient(config);
    mkdirSync(path.join(dir, "vectors"));
    const prefix = config.store.qdrantPrefix;
    const metas = await dumpVectors(
      client,
      prefix,
      path.join(dir, "vectors"),
      (c, n) => say(`vectors: ${c}, ${n} points`),
      bar,
    );
    vectors = { prefix, collections: Object.fromEntries(metas.map((m) => [m.name, m.points])) };
  }
  const sqlite: Record<string, string> = {};
  for (const [name, file] of Object.entries(sqliteFiles(config))) {
    if (!existsSync(file)) throw new Error(`${file} does not exist: nothing to back up there`);
    mkdirSync(path.join(dir, "sqlite"), { recursive: true });
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      await db.backup(path.join(dir, "sqlite", name));
    } finally {
      db.close();
    }
    sqlite[name] = file;
    say(`sqlite: ${file}`);
  }
  const crops = config.store.kind === "qdrant" ? await listCrops(config, dir) : null;
  if (crops)
    say(
      `crops: ${crops.objects} listed in ${crops.location} (${(crops.bytes / 1e6).toFixed(1)} MB, not copied)`,
    );
  const manifest: BackupManifest = {
    format: BACKUP_FORMAT,
    createdAt: new Date().toISOString(),
    records,
    vectors,
    sqlite,
    crops,
  };
  writeFileSync(path.join(dir, "manifest.json"), JSON.stringify(manifest, null, 2));
  return manifest;
}

/** Writes the crop store's listing into the backup. */
async function listCrops(config: Config, dir: string): Promise<NonNullable<BackupManifest["crops"]>> {
  const crops = openCropStore(config);
  let objects = 0;
  let bytes = 0;
  try {
    await writeJsonl(
      path.join(dir, "crops.jsonl"),
      (async function* () {
        for await (const c of crops.list()) {
          objects++;
          bytes += c.size;
          yield c;
        }
      })(),
    );
  } finally {
    crops.close();
  }
  return { location: crops.location, objects, bytes };
}

/** How many crops the backup listed, and how many of those the deployment's crop store does not have. */
async function missingCrops(
  config: Config,
  dir: string,
): Promise<{ listed: number; missing: number; location: string }> {
  const crops = openCropStore(config);
  const have = new Set<string>();
  try {
    for await (const c of crops.list()) have.add(c.key);
  } finally {
    crops.close();
  }
  let listed = 0;
  let missing = 0;
  for await (const batch of readJsonl<{ key: string }>(path.join(dir, "crops.jsonl"), 1000))
    for (const c of batch) {
      listed++;
      if (!have.has(c.key)) missing++;
    }
  return { listed, missing, location: crops.location };
}

export function readManifest(dir: string): BackupManifest {
  const file = path.join(dir, "manifest.json");
  if (!existsSync(file))
    throw new Error(`${dir} has no manifest.json: not a Vigil backup, or an unfinished one`);
  const manifest = JSON.parse(readFileSync(file, "utf8")) as BackupManifest;
  if (manifest.format !== BACKUP_FORMAT)
    throw new Error(`${file}: format ${String(manifest.format)}, this Vigil reads ${BACKUP_FORMAT}`);
  return manifest;
}

export interface RestoreReport {
  records: Record<string, number> | null;
  vectors: Record<string, number> | null;
  sqlite: string[];
  /** Crops the backup listed that the crop store no longer has: what the restore cannot give back. */
  cropsMissing: number;
  cropsListed: number;
}

/**
 * Restores a backup into the deployment `config` describes, which must be empty: records into its PostgreSQL
 * (migrated first), collections under its Qdrant prefix (laid out as it configures), SQLite files where it keeps
 * them (refused if one exists). Crops are not restored; the report says how many of those listed are missing.
 */
export async function restoreDeployment(
  config: Config,
  dir: string,
  say: Say = () => {},
  bar?: PointsProgress,
): Promise<RestoreReport> {
  const manifest = readManifest(dir);
  const wants = (what: string, ok: boolean) => {
    if (!ok) throw new Error(`the backup holds ${what}, which this deployment's config has no place for`);
  };
  wants("PostgreSQL records", !manifest.records || config.store.records.kind === "postgres");
  wants("Qdrant collections", !manifest.vectors || config.store.kind === "qdrant");
  const targets = sqliteFiles(config);
  for (const name of Object.keys(manifest.sqlite)) {
    wants(`the SQLite file ${name}`, targets[name] !== undefined);
    if (existsSync(targets[name]!))
      throw new Error(`${targets[name]} exists: restore into an empty deployment`);
  }
  let records: RestoreReport["records"] = null;
  if (manifest.records) {
    const url = config.store.records.url!;
    await (await PostgresApiStore.open(url)).close(); // migrates an empty database to this release's schema
    const pool = await openPool(url);
    try {
      records = await restoreRecords(
        pool,
        path.join(dir, "records"),
        manifest.records.schemaVersion,
        (t, n) => say(`records: ${t}, ${n} rows`),
      );
    } finally {
      await pool.end();
    }
  }
  let vectors: RestoreReport["vectors"] = null;
  if (manifest.vectors) {
    const client = await qdrantClient(config);
    vectors = await restoreVectors(
      client,
      config.store.qdrantPrefix,
      path.join(dir, "vectors"),
      Object.keys(manifest.vectors.collections),
      config.store.qdrantCollections,
      (c, n) => say(`vectors: ${c}, ${n} points`),
      bar,
    );
  }
  const sqlite: string[] = [];
  for (const name of Object.keys(manifest.sqlite)) {
    mkdirSync(path.dirname(targets[name]!), { recursive: true });
    const db = new Database(path.join(dir, "sqlite", name), { readonly: true, fileMustExist: true });
    try {
      await db.backup(targets[name]!);
    } finally {
      db.close();
    }
    sqlite.push(targets[name]!);
    say(`sqlite: ${targets[name]}`);
  }
  let cropsMissing = 0;
  let cropsListed = 0;
  if (manifest.crops) {
    wants("a crop store's listing", config.store.kind === "qdrant");
    const c = await missingCrops(config, dir);
    cropsListed = c.listed;
    cropsMissing = c.missing;
    say(`crops: ${c.listed - c.missing} of ${c.listed} listed are in ${c.location}`);
  }
  return { records, vectors, sqlite, cropsMissing, cropsListed };
}
