import { describe, expect, it } from "vitest";
import { VectorIndex } from "./vector-index.ts";
import { l2normalize } from "../geometry/index.ts";

function randomUnit(dim: number, seed: number): Float32Array {
  let s = seed;
  const v = new Float32Array(dim).map(() => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x7fffffff - 0.5;
  });
  return l2normalize(v);
}

const exactTop = (vectors: Float32Array[], q: Float32Array, k: number) =>
  vectors
    .map((v, row) => ({ row, score: v.reduce((s, x, i) => s + x * q[i]!, 0) }))
    .sort((a, b) => b.score - a.score)
    .slice(0, k);

describe("VectorIndex", () => {
  it("float32 search is exact, batched, and honours the row filter", async () => {
    const vectors = Array.from({ length: 500 }, (_, i) => randomUnit(64, i + 1));
    const index = new VectorIndex(64, "float32", 16);
    vectors.forEach((v) => index.add(v));
    const queries = [randomUnit(64, 9999), vectors[42]!];
    const [a, b] = await index.search(queries, 5);
    const want = exactTop(vectors, queries[0]!, 5);
    expect(a!.map((h) => h.row)).toEqual(want.map((h) => h.row));
    a!.forEach((h, i) => expect(h.score).toBeCloseTo(want[i]!.score, 5));
    expect(b![0]).toMatchObject({ row: 42 });
    expect(b![0]!.score).toBeCloseTo(1, 5);
    const [even] = await index.search([vectors[42]!], 3, (row) => row % 2 === 1);
    expect(even!.every((h) => h.row % 2 === 1)).toBe(true);
  });

  it("int8 scores approximate cosine closely and rank near-duplicates first", async () => {
    const vectors = Array.from({ length: 2000 }, (_, i) => randomUnit(256, i + 7));
    const index = new VectorIndex(256, "int8");
    vectors.forEach((v) => index.add(v));
    const [hits] = await index.search([vectors[1234]!], 10);
    expect(hits![0]!.row).toBe(1234);
    expect(hits![0]!.score).toBeCloseTo(1, 2);
    const exact = exactTop(vectors, vectors[1234]!, 10);
    hits!.slice(1).forEach((h) => {
      const e = vectors[h.row]!.reduce((s, x, i) => s + x * vectors[1234]![i]!, 0);
      expect(Math.abs(h.score - e)).toBeLessThan(0.01);
    });
    expect(exact[0]!.row).toBe(1234);
    // int8 rows, the half-row copy for two-stage search, and scales: 1.5 bytes a dimension plus growth slack
    expect(index.memoryBytes).toBeLessThan((2000 * 256 * 1.5 + 2000 * 4) * 1.6);
  });

  it("removes rows by moving the last one into the gap", async () => {
    const index = new VectorIndex(8, "float32");
    const vs = [1, 2, 3].map((s) => randomUnit(8, s));
    vs.forEach((v) => index.add(v));
    expect(index.swapRemove(0)).toBe(2);
    expect(index.size).toBe(2);
    const [hits] = await index.search([vs[2]!], 1);
    expect(hits![0]!.row).toBe(0);
  });
});

describe("VectorIndex two-stage search (large int8 indexes)", () => {
  it("returns hits as good as the exact top 10, within int8 quantisation error", async () => {
    const dim = 64;
    const rows = 210_000; // above the two-stage threshold
    const index = new VectorIndex(dim, "int8", rows);
    const vectors: Float32Array[] = [];
    let s = 12345;
    const next = () => (s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff - 0.5;
    const base = Array.from({ length: 500 }, () => new Float32Array(dim).map(next));
    for (let r = 0; r < rows; r++) {
      const centre = base[r % 500]!;
      const v = l2normalize(new Float32Array(dim).map((_, i) => centre[i]! + 0.8 * next()));
      vectors.push(v);
      index.add(v);
    }
    const query = l2normalize(Float32Array.from(base[7]!));
    const exact = vectors.map((v) => v.reduce((a, x, i) => a + x * query[i]!, 0)).sort((a, b) => b - a);
    const tenth = exact[9]!;
    const [hits] = await index.search([query], 10);
    expect(hits).toHaveLength(10);
    for (const h of hits!) {
      const truth = vectors[h.row]!.reduce((a, x, i) => a + x * query[i]!, 0);
      expect(truth).toBeGreaterThan(tenth - 0.02);
    }
    // and with a filter the two stages respect it
    const [odd] = await index.search([query], 5, (row) => row % 2 === 1);
    expect(odd!.every((h) => h.row % 2 === 1)).toBe(true);
  });
});
