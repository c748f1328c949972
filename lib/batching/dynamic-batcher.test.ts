import { describe, expect, it } from "vitest";
import { DynamicBatcher } from "./dynamic-batcher.ts";

describe("DynamicBatcher", () => {
  it("flushes as soon as a batch is full", async () => {
    const batches: number[][] = [];
    const b = new DynamicBatcher<number, number>({ maxBatch: 4, maxWaitMs: 10_000 }, async (xs) => {
      batches.push(xs);
      return xs.map((x) => x * 10);
    });
    const started = Date.now();
    const results = await b.submitMany([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(results).toEqual([10, 20, 30, 40, 50, 60, 70, 80]);
    expect(batches).toEqual([
      [1, 2, 3, 4],
      [5, 6, 7, 8],
    ]);
  });

  it("runs up to `concurrency` batches at once (one per worker), and one at a time by default", async () => {
    for (const concurrency of [1, 3]) {
      let running = 0;
      let most = 0;
      const b = new DynamicBatcher<number, number>(
        { maxBatch: 2, maxWaitMs: 10_000, concurrency },
        async (xs) => {
          most = Math.max(most, ++running);
          await new Promise((r) => setTimeout(r, 20));
          running--;
          return xs;
        },
      );
      expect(await b.submitMany([1, 2, 3, 4, 5, 6, 7, 8])).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(most).toBe(concurrency);
      expect(b.batchSizes).toEqual([2, 2, 2, 2]);
    }
  });

  it("flushes a partial batch when its oldest item has waited maxWaitMs", async () => {
    const b = new DynamicBatcher<number, number>({ maxBatch: 16, maxWaitMs: 40 }, async (xs) => xs);
    const started = Date.now();
    const r = await Promise.all([b.submit(1), b.submit(2)]);
    const waited = Date.now() - started;
    expect(r).toEqual([1, 2]);
    expect(waited).toBeGreaterThanOrEqual(35);
    expect(b.batchSizes).toEqual([2]);
  });

  it("returns each caller its own result when callers interleave (many cameras, one model)", async () => {
    const b = new DynamicBatcher<{ cam: string; i: number }, string>(
      { maxBatch: 5, maxWaitMs: 5 },
      async (xs) => {
        await new Promise((r) => setTimeout(r, 2));
        return xs.map((x) => `${x.cam}#${x.i}`);
      },
    );
    const calls = [];
    for (let i = 0; i < 12; i++)
      for (const cam of ["a", "b", "c"]) calls.push(b.submit({ cam, i }).then((r) => [r, `${cam}#${i}`]));
    for (const [got, want] of await Promise.all(calls)) expect(got).toBe(want);
    expect(Math.max(...b.batchSizes)).toBeLessThanOrEqual(5);
    expect(b.batchSizes.reduce((s, n) => s + n, 0)).toBe(36);
  });

  it("rejects every caller of a failed batch and keeps serving later ones", async () => {
    let fail = true;
    const b = new DynamicBatcher<number, number>({ maxBatch: 2, maxWaitMs: 1 }, async (xs) => {
      if (fail) throw new Error("model crashed");
      return xs;
    });
    const results = await Promise.allSettled([b.submit(1), b.submit(2)]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    fail = false;
    expect(await b.submit(3)).toBe(3);
  });

  it("refuses a runner that returns the wrong number of results", async () => {
    const b = new DynamicBatcher<number, number>({ maxBatch: 2, maxWaitMs: 1 }, async () => [1]);
    await expect(b.submitMany([1, 2])).rejects.toThrow(/1 results for 2 items/);
  });
});
