import { QdrantClient } from "@qdrant/js-client-rest";
import { readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import type { Config } from "../../lib/config/index.ts";
import { FolderCropStore } from "../../lib/store/crop-store.ts";
import { QdrantStore } from "../../lib/store/qdrant-store.ts";
import type { Sighting, SightingHit, SightingQuery } from "../../lib/store/sighting-store.ts";
import { SqliteStore } from "../../lib/store/sqlite-store.ts";
import { QdrantServer } from "../../lib/testing/qdrant/server.ts";
import { VectorIndex } from "../../lib/store/vector-index.ts";
import { progress } from "../../lib/telemetry/progress.ts";
import { modelSpec, PACKS, DEFAULT_PACK } from "../../lib/vision/models/registry.ts";
import { tempDirFor } from "../../lib/util/temp.ts";
import { percentile } from "./bench-vision.ts";
import { l2normalize } from "../../lib/geometry/index.ts";

/** Deterministic Gaussian-ish noise (sum of uniforms), so runs are comparable. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  const u = () => (s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32;
  return { u, g: () => u() + u() + u() + u() - 2 };
}

export interface SearchBenchResult {
  store: "embedded" | "qdrant";
  sightings: number;
  dim: number;
  queries: number;
  buildSeconds: number;
  p50Ms: number;
  p95Ms: number;
  p50FilteredMs: number;
  p95FilteredMs: number;
  filterSelectivity: number;
  recallAt10: number;
  /** Recall@10 of the filtered search against exact search over the rows the filter passes. */
  recallAt10Filtered: number;
  /** The embedded store's in-process index (null for Qdrant, whose index lives in its server: see `qdrant`). */
  indexMemoryMB: number | null;
  rssMB: number;
  /** Qdrant only: the server's resident memory and its storage on disk after the run (null for an outside one). */
  qdrant: { url: string; rssMB: number | null; diskMB: number | null; indexSeconds: number } | null;
  watchlistPeople: number | null;
  watchlistMsPerFaceBatch1: number | null;
  watchlistMsPerFaceBatch16: number | null;
}

export interface SearchBenchOptions {
  /** The embedded store (default), or the Qdrant store. */
  store?: "embedded" | "qdrant";
  /** Qdrant nodes to use; without them a local Qdrant (../shared/qdrant) is started for the run and removed. */
  qdrantUrl?: string[];
  qdrantApiKey?: string;
}

/** What the benchmark needs of a store: writes, searches, and what it reports of itself. */
interface BenchStore {
  addSightings(sightings: Sighting[]): Promise<void>;
  search(q: SightingQuery): Promise<SightingHit[]>;
  close(): void;
}

/** Writes in flight at once: the Qdrant store waits on the server for each batch, so several keep it busy. */
const QDRANT_WRITERS = 4;

/** A folder's size on disk, everything under it. */
function folderBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) total += folderBytes(full);
    else if (entry.isFile()) total += statSync(full).blocks * 512;
  }
  return total;
}

/** A process's resident memory from /proc (Linux). */
function rssOf(pid: number): number | null {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : null;
}

/** Until the collection is indexed (status green, optimisers idle): searches are timed on the index. */
async function indexed(url: string, apiKey: string | undefined, collection: string) {
  const client = new QdrantClient({ url, apiKey, checkCompatibility: false });
  for (;;) {
    const info = await client.getCollection(collection);
    if (info.status === "green" && info.optimizer_status === "ok") return;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** The 10 best rows by dot product (the vectors are unit length), exactly. */
function exactTop10(rows: { id: string; vector: Float32Array }[], query: Float32Array): Set<string> {
  const scored = rows.map((r) => {
    let dot = 0;
    for (let k = 0; k < query.length; k++) dot += r.vector[k]! * query[k]!;
    return { id: r.id, dot };
  });
  return new Set(
    scored
      .sort((a, b) => b.dot - a.dot)
      .slice(0, 10)
      .map((r) => r.id),
  );
}

/**
 * Sightings clustered like real ones (many per identity, same-identity cosine ≈ 0.6) in the embedded store or the
 * Qdrant store; queries are fresh samples of stored identities. Recall@10 is against exact float32 search over all
 * vectors (and, filtered, over the rows the filter passes).
 */
export async function benchSearch(
  config: Config,
  n: number,
  queries = 100,
  options: SearchBenchOptions = {},
): Promise<SearchBenchResult> {
  const kind = options.store ?? "embedded";
  const dim = modelSpec(PACKS[DEFAULT_PACK]!.embedder).outputDim!;
  const dir = tempDirFor(config, "bench-search");
  let server: QdrantServer | undefined;
  let store: BenchStore;
  let urls: string[] = [];
  const prefix = `bench${Date.now().toString(36)}`;
  if (kind === "qdrant") {
    if (options.qdrantUrl?.length) urls = options.qdrantUrl;
    else {
      server = await QdrantServer.start();
      urls = server.urls;
    }
    store = new QdrantStore(urls, prefix, options.qdrantApiKey, new FolderCropStore(path.join(dir, "crops")));
  } else store = new SqliteStore(path.join(dir, "bench.db"));
  const identities = Math.max(10, Math.floor(n / 20));
  const centre = (id: number) => {
    const r = rng(id * 7919 + 1);
    return l2normalize(new Float32Array(dim).map(() => r.g()));
  };
  const sample = (id: number, seed: number) => {
    const c = centre(id);
    const r = rng(seed);
    return l2normalize(c.map((x) => x + 0.75 * (r.g() / Math.sqrt(dim)) * Math.sqrt(3)));
  };
  const cameras = 16;
  const spanMs = 30 * 86_400_000;
  const t0 = Date.UTC(2026, 9, 1);
  let exact: VectorIndex | undefined = new VectorIndex(dim, "float32", n);
  const q = { faceSize: 80, interOcular: 30, sharpness: 100, yawDeg: 0, pitchDeg: 0, detScore: 0.9 };
  const crop = new Uint8Array(0);
  // The filter timed below (one camera, one week): the rows it passes, for its exact answer.
  const since = t0 + 10 * 86_400_000;
  const until = since + 7 * 86_400_000;
  const passing: { id: string; vector: Float32Array }[] = [];
  const started = Date.now();
  const bar = progress(`bench search: storing ${n} sightings in the ${kind} store`, n);
  const chunk = kind === "qdrant" ? 2048 : 5000;
  const writing = new Set<Promise<void>>();
  for (let i = 0; i < n; i += chunk) {
    const batch: Sighting[] = [];
    for (let k = i; k < Math.min(n, i + chunk); k++) {
      const vector = sample(k % identities, k + 12345);
      exact!.add(vector);
      const ts = t0 + Math.floor((k / n) * spanMs);
      if (k % cameras === 3 && ts >= since && ts <= until) passing.push({ id: `s${k}`, vector });
      batch.push({
        id: `s${k}`,
        trackId: `t${k}`,
        cameraId: `cam${k % cameras}`,
        startTs: ts,
        endTs: ts + 3000,
        faces: 5,
        modelId: "bench",
        quality: q,
        match: null,
        vector,
        crop,
      });
    }
    const write = store.addSightings(batch).then(() => {
      writing.delete(write);
      bar.tick(batch.length);
    });
    writing.add(write);
    if (writing.size >= (kind === "qdrant" ? QDRANT_WRITERS : 1)) await Promise.race(writing);
  }
  await Promise.all(writing);
  bar.done();
  const buildSeconds = (Date.now() - started) / 1000;
  let indexSeconds = 0;
  if (kind === "qdrant") {
    const t = Date.now();
    await indexed(urls[0]!, options.qdrantApiKey, `${prefix}_sightings__bench`);
    indexSeconds = (Date.now() - t) / 1000;
  }
  const queryVectors = Array.from({ length: queries }, (_, i) => sample((i * 7) % identities, 999_000 + i));
  const time = async (fn: () => Promise<unknown>) => {
    const t = performance.now();
    await fn();
    return performance.now() - t;
  };
  for (let i = 0; i < 3; i++) await store.search({ modelId: "bench", vector: queryVectors[i]!, top: 10 });
  const plain: number[] = [];
  const filtered: number[] = [];
  let recallSum = 0;
  let filteredRecallSum = 0;
  const truth = await exact!.search(queryVectors, 10);
  exact = undefined; // 1 GB at a million sightings; not part of what is measured
  const sbar = progress("bench search: queries", queries * 2);
  for (let i = 0; i < queries; i++) {
    let hits: SightingHit[] = [];
    plain.push(
      await time(
        async () => (hits = await store.search({ modelId: "bench", vector: queryVectors[i]!, top: 10 })),
      ),
    );
    const want = new Set(truth[i]!.map((h) => `s${h.row}`));
    recallSum += hits.filter((h) => want.has(h.sighting.id)).length / 10;
    sbar.tick();
    let inFilter: SightingHit[] = [];
    filtered.push(
      await time(
        async () =>
          (inFilter = await store.search({
            modelId: "bench",
            vector: queryVectors[i]!,
            cameras: ["cam3"],
            since,
            until,
            top: 10,
          })),
      ),
    );
    const wantFiltered = exactTop10(passing, queryVectors[i]!);
    filteredRecallSum += inFilter.filter((h) => wantFiltered.has(h.sighting.id)).length / 10;
    sbar.tick();
  }
  sbar.done();
  const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
  const indexMemoryMB = store instanceof SqliteStore ? store.sightingIndexBytes() / 2 ** 20 : null;
  const rssMB = process.memoryUsage().rss / 2 ** 20;
  const node = server?.nodes[0];
  const qdrant =
    kind === "qdrant"
      ? {
          url: urls.join(", "),
          rssMB: node?.pid ? rssOf(node.pid) : null,
          diskMB: node ? folderBytes(path.join(node.dir, "storage")) / 2 ** 20 : null,
          indexSeconds,
        }
      : null;
  store.close();
  await server?.destroy();
  rmSync(dir, { recursive: true, force: true });
  const searched = {
    store: kind,
    sightings: n,
    dim,
    queries,
    buildSeconds,
    p50Ms: percentile(sorted(plain), 0.5),
    p95Ms: percentile(sorted(plain), 0.95),
    p50FilteredMs: percentile(sorted(filtered), 0.5),
    p95FilteredMs: percentile(sorted(filtered), 0.95),
    filterSelectivity: (1 / cameras) * (7 / 30),
    recallAt10: recallSum / queries,
    recallAt10Filtered: filteredRecallSum / queries,
    indexMemoryMB,
    rssMB,
    qdrant,
  };
  // The watchlist figure is the embedded store's in-memory matching; Qdrant's history search is what is asked of it.
  if (kind === "qdrant")
    return {
      ...searched,
      watchlistPeople: null,
      watchlistMsPerFaceBatch1: null,
      watchlistMsPerFaceBatch16: null,
    };

  // Watchlist: 10,000 people × 3 photos, matched exactly (float32) as the match stage does, one face or 16.
  const people = 10_000;
  const wl = new SqliteStore(":memory:");
  const wbar = progress("bench search: enrolling 10,000 people", people);
  for (let p = 0; p < people; p++) {
    await wl.upsertPerson({ id: `p${p}`, name: `p${p}`, watchlistId: "default" });
    for (let k = 0; k < 3; k++)
      await wl.addFace({
        faceId: `p${p}:${k}`,
        personId: `p${p}`,
        modelId: "bench",
        vector: sample(p, p * 3 + k),
        source: "synthetic",
      });
    wbar.tick();
  }
  wbar.done();
  const faces = Array.from({ length: 16 }, (_, i) => sample(i * 13, 5_000_000 + i));
  for (let i = 0; i < 3; i++) await wl.match("bench", faces, 3);
  const one: number[] = [];
  const sixteen: number[] = [];
  for (let i = 0; i < 30; i++) {
    one.push(await time(() => wl.match("bench", [faces[i % 16]!], 3)));
    sixteen.push((await time(() => wl.match("bench", faces, 3))) / 16);
  }
  wl.close();
  return {
    ...searched,
    watchlistPeople: people,
    watchlistMsPerFaceBatch1: percentile(sorted(one), 0.5),
    watchlistMsPerFaceBatch16: percentile(sorted(sixteen), 0.5),
  };
}
