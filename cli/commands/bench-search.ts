import { rmSync } from "node:fs";
import path from "node:path";
import type { Config } from "../../lib/config/index.ts";
import type { Sighting } from "../../lib/store/sighting-store.ts";
import { SqliteStore } from "../../lib/store/sqlite-store.ts";
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
  indexMemoryMB: number;
  rssMB: number;
  watchlistPeople: number;
  watchlistMsPerFaceBatch1: number;
  watchlistMsPerFaceBatch16: number;
}

/**
 * Sightings clustered like real ones (many per identity, same-identity cosine ≈ 0.6) in the embedded store;
 * queries are fresh samples of stored identities. Recall@10 is against exact float32 search over all vectors.
 */
export async function benchSearch(config: Config, n: number, queries = 100): Promise<SearchBenchResult> {
  const dim = modelSpec(PACKS[DEFAULT_PACK]!.embedder).outputDim!;
  const dir = tempDirFor(config, "bench-search");
  const store = new SqliteStore(path.join(dir, "bench.db"));
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
  const started = Date.now();
  const bar = progress(`bench search: storing ${n} sightings`, n);
  const chunk = 5000;
  for (let i = 0; i < n; i += chunk) {
    const batch: Sighting[] = [];
    for (let k = i; k < Math.min(n, i + chunk); k++) {
      const vector = sample(k % identities, k + 12345);
      exact!.add(vector);
      const ts = t0 + Math.floor((k / n) * spanMs);
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
    await store.addSightings(batch);
    bar.tick(batch.length);
  }
  bar.done();
  const buildSeconds = (Date.now() - started) / 1000;
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
  const truth = await exact!.search(queryVectors, 10);
  exact = undefined; // 1 GB at a million sightings; not part of what is measured
  const sbar = progress("bench search: queries", queries * 2);
  const since = t0 + 10 * 86_400_000;
  const until = since + 7 * 86_400_000;
  for (let i = 0; i < queries; i++) {
    let hits: Awaited<ReturnType<SqliteStore["search"]>> = [];
    plain.push(
      await time(
        async () => (hits = await store.search({ modelId: "bench", vector: queryVectors[i]!, top: 10 })),
      ),
    );
    const want = new Set(truth[i]!.map((h) => `s${h.row}`));
    recallSum += hits.filter((h) => want.has(h.sighting.id)).length / 10;
    sbar.tick();
    filtered.push(
      await time(() =>
        store.search({
          modelId: "bench",
          vector: queryVectors[i]!,
          cameras: ["cam3"],
          since,
          until,
          top: 10,
        }),
      ),
    );
    sbar.tick();
  }
  sbar.done();
  const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
  const indexMemoryMB = store.sightingIndexBytes() / 2 ** 20;
  const rssMB = process.memoryUsage().rss / 2 ** 20;
  store.close();
  rmSync(dir, { recursive: true, force: true });

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
    indexMemoryMB,
    rssMB,
    watchlistPeople: people,
    watchlistMsPerFaceBatch1: percentile(sorted(one), 0.5),
    watchlistMsPerFaceBatch16: percentile(sorted(sixteen), 0.5),
  };
}
