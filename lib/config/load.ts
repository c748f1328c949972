import { readFileSync, existsSync } from "node:fs";
import path from "node:path";
import { ConfigSchema, type Config } from "./schema.ts";
import { FILE_NOT_RECORDED, keepsSightingClips, recordableUrl } from "../media/camera-url.ts";

export class ConfigError extends Error {
  override name = "ConfigError";
}

const ENV_PREFIX = "VIGIL_";
/** Short names kept for the variables users already know. */
const ENV_ALIASES: Record<string, string> = {
  VIGIL_MODEL_MIRROR: "models.mirror",
  VIGIL_DATA_DIR: "dataDir",
  VIGIL_LOG_LEVEL: "log.level",
};

const camel = (s: string) => s.toLowerCase().replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());

/** `VIGIL_DETECT__SCORE_THRESHOLD` → `detect.scoreThreshold`. */
export function envKeyToPath(key: string): string | undefined {
  if (ENV_ALIASES[key]) return ENV_ALIASES[key];
  if (!key.startsWith(ENV_PREFIX)) return undefined;
  return key.slice(ENV_PREFIX.length).split("__").map(camel).join(".");
}

function parseEnvValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

function setPath(target: Record<string, unknown>, dotted: string, value: unknown) {
  const parts = dotted.split(".");
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (typeof next !== "object" || next === null || Array.isArray(next)) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1]!] = value;
}

export interface LoadOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
  overrides?: Record<string, unknown>;
}

/** File first, then environment variables, then explicit (CLI) overrides; validated once, errors name the key. */
export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  const raw: Record<string, unknown> = {};
  const origin = new Map<string, string>();
  const file = opts.file ?? (existsSync("vigil.config.json") ? "vigil.config.json" : undefined);
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
    }
    try {
      Object.assign(raw, JSON.parse(text));
    } catch (err) {
      throw new ConfigError(`config file ${file} is not valid JSON: ${(err as Error).message}`);
    }
  }
  /** Environment values that JSON turned into something other than the string they were given as. */
  const reparsed = new Map<string, string>();
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined) continue;
    const dotted = envKeyToPath(key);
    if (!dotted || key === "VIGIL_CONFIG") continue;
    const parsedValue = parseEnvValue(value);
    setPath(raw, dotted, parsedValue);
    if (typeof parsedValue !== "string") reparsed.set(dotted, value);
    origin.set(dotted, `environment variable ${key}`);
  }
  for (const [dotted, value] of Object.entries(opts.overrides ?? {})) {
    if (value === undefined) continue;
    setPath(raw, dotted, value);
    origin.set(dotted, "command line");
  }
  let parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    // A string key given a value that reads as JSON (a password "123456", a name "true") is that string.
    // Only a type mismatch says so: a number that breaks a rule (a shard index past the count) stays a number.
    const retry = parsed.error.issues
      .filter((i) => ["invalid_type", "invalid_union", "invalid_value"].includes(i.code))
      .map((i) => i.path.join("."))
      .filter((k) => reparsed.has(k));
    if (retry.length > 0) {
      for (const key of retry) setPath(raw, key, reparsed.get(key));
      parsed = ConfigSchema.safeParse(raw);
    }
  }
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const key = issue.path.join(".") || "(root)";
      const from = origin.get(key) ?? (file ? `config file ${file}` : "defaults");
      return `  ${key}: ${issue.message} (from ${from})`;
    });
    throw new ConfigError(`invalid configuration:\n${lines.join("\n")}`);
  }
  return parsed.data;
}

export function modelCacheDir(config: Config): string {
  return path.resolve(config.models.cacheDir ?? path.join(config.dataDir, "models"));
}

export function storePath(config: Config): string {
  return path.resolve(config.store.path ?? path.join(config.dataDir, "vigil.db"));
}

/**
 * Which cameras' alerts, and which cameras' sightings, get clips: each camera's `record.keep`, or the ingest
 * default for cameras the config does not list (`vigil run --source`); none for a listed camera that is a file
 * (its records name no clip; ingest says why it records nothing). `why` says why a record has no clip.
 */
export function clippedRecords(config: Pick<Config, "cameras" | "ingest">) {
  const camera = (cameraId: string) => config.cameras.find((c) => c.id === cameraId);
  const file = (cameraId: string) => {
    const c = camera(cameraId);
    return c !== undefined && !recordableUrl(c.url);
  };
  const keep = (cameraId: string) =>
    file(cameraId) ? "off" : (camera(cameraId)?.record?.keep ?? config.ingest.record.keep);
  const alerts = (cameraId: string) => keep(cameraId) !== "off";
  const sightings = (cameraId: string) => keepsSightingClips(keep(cameraId));
  return {
    alerts,
    sightings,
    why(kind: "alerts" | "sightings", cameraId: string): string | undefined {
      if ((kind === "alerts" ? alerts : sightings)(cameraId)) return undefined;
      if (file(cameraId)) return `camera ${cameraId} is ${FILE_NOT_RECORDED}`;
      return kind === "alerts"
        ? `camera ${cameraId} is not recorded (its record.keep is off)`
        : `camera ${cameraId} keeps no clips of sightings (its record.keep is ${keep(cameraId)})`;
    },
  };
}

/** Whether any configured camera (or the ingest default) records: clips then exist to serve and to expire. */
export const recordsAnyCamera = (config: Pick<Config, "cameras" | "ingest">) =>
  config.ingest.record.keep !== "off" || config.cameras.some((c) => clippedRecords(config).alerts(c.id));
