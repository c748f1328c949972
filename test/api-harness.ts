import path from "node:path";
import sharp from "sharp";
import { KeyService, cliActor } from "../lib/api/keys.ts";
import { MemoryBus } from "../lib/bus/index.ts";
import type { Config } from "../lib/config/index.ts";
import { AlertContract, CameraStatusContract, Topics, type AlertMessage } from "../lib/contracts/index.ts";
import { l2normalize } from "../lib/geometry/index.ts";
import type { Role } from "../lib/store/key-store.ts";
import { SqliteApiStore } from "../lib/store/sqlite-api-store.ts";
import type { Sighting } from "../lib/store/sighting-store.ts";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import { Metrics } from "../lib/telemetry/metrics.ts";
import { decodeImage } from "../lib/vision/pixels/image.ts";
import type { PhotoEmbedder, PhotoEmbedding, PhotoInput } from "../lib/watchlist/photo.ts";
import { WatchlistService } from "../lib/watchlist/service.ts";
import { embeddingMessage } from "../lib/testing/embedding-message.ts";
import { MatchStage } from "../services/match/stage.ts";
import { buildApi } from "../services/api/app.ts";
import { startApi, type ApiServerDeps } from "../services/api/index.ts";
import { createLogger } from "../lib/telemetry/log.ts";
import type { ApiDeps, ZodApp } from "../services/api/context.ts";
import { LiveFeed } from "../services/api/live.ts";
import { tempDir, testConfig, testMatchOptions } from "./helpers.ts";

export const MODEL = "fake-model";

/**
 * Photos decode for real (sharp: EXIF orientation, truncation, formats) but "faces" are colours, so tests run in
 * milliseconds: a mostly red, green or blue picture is one face whose vector is its colour; a dark one has none.
 */
export function colourPhotos(): PhotoEmbedder & {
  decoded: { name: string; width: number; height: number }[];
} {
  const decoded: { name: string; width: number; height: number }[] = [];
  const embed = async (data: string | Uint8Array, name: string): Promise<PhotoEmbedding> => {
    let image;
    try {
      image = await decodeImage(data, name);
    } catch (err) {
      return { ok: false, reason: `not an image: ${(err as Error).message}` };
    }
    decoded.push({ name, width: image.width, height: image.height });
    const sum = [0, 0, 0];
    for (let i = 0; i < image.data.length; i += 3) {
      sum[0]! += image.data[i + 2]!;
      sum[1]! += image.data[i + 1]!;
      sum[2]! += image.data[i]!;
    }
    const n = image.data.length / 3;
    const rgb = sum.map((v) => v / n);
    if (Math.max(...rgb) < 40) return { ok: false, reason: "no face found" };
    // The whole picture stands for the aligned face, so enrolled photos have crops to serve.
    return { ok: true, modelId: MODEL, vector: l2normalize(Float32Array.from(rgb)), face: image };
  };
  return {
    decoded,
    embedPhoto: (photo: PhotoInput) =>
      typeof photo === "string" ? embed(photo, photo) : embed(photo.bytes, photo.name),
    embedAlignedCrop: (jpeg, label) => embed(jpeg, label),
  };
}

export const RED = { r: 230, g: 20, b: 20 };
export const GREEN = { r: 20, g: 230, b: 20 };
export const BLUE = { r: 20, g: 20, b: 230 };
export const BLACK = { r: 5, g: 5, b: 5 };

export async function photo(
  colour: { r: number; g: number; b: number },
  options: { width?: number; height?: number; format?: "jpeg" | "png"; orientation?: number } = {},
): Promise<Buffer> {
  let s = sharp({
    create: { width: options.width ?? 64, height: options.height ?? 48, channels: 3, background: colour },
  });
  if (options.orientation) s = s.withMetadata({ orientation: options.orientation });
  return options.format === "png" ? s.png().toBuffer() : s.jpeg().toBuffer();
}

export const vec = (...v: number[]) => l2normalize(Float32Array.from(v));

export function sighting(
  id: string,
  cameraId: string,
  startTs: number,
  vector: Float32Array,
  match: Sighting["match"] = null,
): Sighting {
  return {
    id,
    trackId: `t-${id}`,
    cameraId,
    startTs,
    endTs: startTs + 4000,
    faces: 3,
    modelId: MODEL,
    quality: { faceSize: 80, interOcular: 30, sharpness: 100, yawDeg: 0, pitchDeg: 0, detScore: 0.9 },
    match,
    vector,
    crop: Uint8Array.of(0xff, 0xd8, 0xff, id.length),
  };
}

export function alertMessage(
  id: string,
  cameraId: string,
  personId: string,
  ts: number,
  watchlistId = "default",
): AlertMessage {
  return {
    alertId: id,
    watchlistId,
    personId,
    personName: personId.toUpperCase(),
    cameraId,
    ts,
    score: 0.9,
    threshold: 0.5,
    modelId: MODEL,
    faceId: `${cameraId}:${ts}:0`,
    box: { x: 1, y: 2, width: 30, height: 30 },
    crop: Uint8Array.of(0xff, 0xd8, 0xff, 0xe0),
  };
}

export async function publishAlerts(bus: MemoryBus, alerts: AlertMessage[]) {
  await bus.publish(
    Topics.alerts,
    alerts.map((a) => ({ key: a.watchlistId, value: AlertContract.encode(a) })),
  );
}

/** Enrols a person from colour photos (one per file name) through the watchlist service, as the API does. */
export async function enrolColours(
  store: SqliteStore,
  personId: string,
  files: Record<string, { r: number; g: number; b: number }>,
) {
  const photos = await Promise.all(
    Object.entries(files).map(async ([name, colour]) => ({ name, bytes: await photo(colour) })),
  );
  const { outcomes } = await new WatchlistService({ store, photos: colourPhotos() }).enrol(
    { id: personId },
    photos,
  );
  if (!outcomes.every((o) => o.ok)) throw new Error(`enrolment refused: ${JSON.stringify(outcomes)}`);
}

/**
 * One clear look at a face (its vector a colour, as `colourPhotos` makes them) through a real match stage over
 * the store; the alerts it raises are published on vigil.alerts, as the pipeline would, and returned.
 */
export async function matchAndPublish(
  bus: MemoryBus,
  store: SqliteStore,
  look: { cameraId: string; ts: number; vector: Float32Array },
): Promise<AlertMessage[]> {
  const stage = new MatchStage(store, store, testMatchOptions(0.5));
  const quality = { faceSize: 90, interOcular: 40, sharpness: 120, yawDeg: 0, pitchDeg: 0, detScore: 0.95 };
  const emits = await stage.handle([embeddingMessage({ ...look, seq: 1, modelId: MODEL, quality })]);
  const alerts = emits.filter((e) => e.topic === Topics.alerts);
  await bus.publish(
    Topics.alerts,
    alerts.map(({ key, value }) => ({ key, value })),
  );
  return alerts.map((e) => AlertContract.decode(e.value));
}

/** The mean colour of a JPEG, to tell which colour photo a crop URL served. */
export async function meanColour(jpeg: Uint8Array) {
  const [r, g, b] = (await sharp(jpeg).stats()).channels.map((c) => c.mean);
  return { r: r!, g: g!, b: b! };
}

export async function publishStatus(
  bus: MemoryBus,
  s: {
    cameraId: string;
    state: "live" | "error" | "connecting" | "stalled" | "backoff" | "ended";
    ts: number;
    framesIn?: number;
    lastError?: string;
    recording?: { on: boolean; reason: string | null };
  },
) {
  await bus.publish(Topics.cameraStatus, [
    {
      key: s.cameraId,
      value: CameraStatusContract.encode({
        cameraId: s.cameraId,
        state: s.state,
        ts: s.ts,
        lastError: s.lastError ?? null,
        framesIn: s.framesIn ?? 0,
        framesDropped: 1,
        framesUndecodable: 0,
        reconnects: 2,
        ...(s.recording ? { recording: s.recording } : {}),
      }),
    },
  ]);
}

export interface Harness {
  app: ZodApp;
  config: Config;
  store: SqliteStore;
  apiStore: SqliteApiStore;
  bus: MemoryBus;
  feed: LiveFeed;
  photos: ReturnType<typeof colourPhotos>;
  keys: Record<Role, string> & { revoked: string };
  keyIds: Record<Role, string>;
  auth(role: Role | "revoked"): { authorization: string };
  close(): Promise<void>;
}

/** The API (not listening: `inject` it) over any store, with its live feed on a memory bus; threshold 0.5. */
export async function apiOver(deps: Pick<ApiDeps, "config" | "store" | "apiStore" | "photos">) {
  const bus = new MemoryBus({ capacity: 64 });
  const feed = new LiveFeed({
    bus,
    store: deps.store,
    group: "api",
    replay: deps.config.api.sse.replay,
    snapshots: deps.config.api.snapshots,
    sinkMaxAgeMs: 60_000,
  });
  await feed.start();
  const app = await buildApi({
    ...deps,
    thresholdFor: () => 0.5,
    feed,
    metrics: new Metrics("api-test"),
    readiness: { bus: () => bus.healthy() },
  });
  return { app, bus, feed };
}

/** The API on a fresh SQLite file and a memory bus, with one key per role (and one revoked). */
export async function apiHarness(overrides: Record<string, unknown> = {}): Promise<Harness> {
  const dir = tempDir("vigil-api-");
  const file = path.join(dir, "vigil.db");
  const config = testConfig({ "store.path": file, ...overrides });
  const store = new SqliteStore(file, { refreshMs: 0 });
  const apiStore = new SqliteApiStore(file);
  const photos = colourPhotos();
  const { app, bus, feed } = await apiOver({ config, store, apiStore, photos });
  const service = new KeyService(apiStore, apiStore);
  const make = async (role: Role, name = `${role}-key`) => service.create({ name, role }, cliActor());
  const viewer = await make("viewer");
  const operator = await make("operator");
  const admin = await make("admin");
  const revoked = await make("admin", "old-admin");
  await service.revoke(revoked.record.id, cliActor());
  const keys = { viewer: viewer.key, operator: operator.key, admin: admin.key, revoked: revoked.key };
  return {
    app,
    config,
    store,
    apiStore,
    bus,
    feed,
    photos,
    keys,
    keyIds: { viewer: viewer.record.id, operator: operator.record.id, admin: admin.record.id },
    auth: (role) => ({ authorization: `Bearer ${keys[role]}` }),
    close: async () => {
      await app.close();
      await feed.stop();
      await bus.close();
      apiStore.close();
      store.close();
    },
  };
}

/** A multipart body as fetch / inject send it. */
export async function form(
  fields: Record<string, string | string[]>,
  files: { field?: string; name: string; bytes: Uint8Array; type?: string }[],
): Promise<{ payload: Buffer; headers: Record<string, string> }> {
  const fd = new FormData();
  for (const [k, v] of Object.entries(fields))
    for (const one of Array.isArray(v) ? v : [v]) fd.append(k, one);
  for (const f of files)
    fd.append(f.field ?? "photo", new Blob([f.bytes], { type: f.type ?? "image/jpeg" }), f.name);
  const request = new Request("http://x/", { method: "POST", body: fd });
  return {
    payload: Buffer.from(await request.arrayBuffer()),
    headers: { "content-type": request.headers.get("content-type")! },
  };
}

/** The API listening on a free port of 127.0.0.1 over the given config, bus and stores, photos as colours. */
export function listeningApi(
  deps: Pick<ApiServerDeps, "config" | "bus" | "store" | "apiStore">,
  name: string,
) {
  return startApi({
    ...deps,
    photos: colourPhotos(),
    thresholdFor: () => 0.5,
    metrics: new Metrics(name),
    log: createLogger(name, deps.config),
    group: "api",
    listen: { host: "127.0.0.1", port: 0 },
  });
}
