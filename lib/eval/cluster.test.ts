import { describe, expect, it } from "vitest";
import { bcubed, seededRandom, shuffled } from "./cluster.ts";

describe("BCubed", () => {
  it("is 1/1/1 for a perfect clustering and penalises merges in precision, splits in recall", () => {
    const truth = ["a", "a", "b", "b", "c"];
    expect(bcubed(truth, ["1", "1", "2", "2", "3"])).toEqual({ precision: 1, recall: 1, f1: 1 });
    // Everything in one cluster: recall 1, precision the mean share of one's own class.
    const merged = bcubed(truth, ["1", "1", "1", "1", "1"]);
    expect(merged.recall).toBe(1);
    expect(merged.precision).toBeCloseTo((2 / 5) * (4 / 5) + (1 / 5) * (1 / 5), 10);
    // Every item alone: precision 1, recall the mean of 1 / class size.
    const split = bcubed(truth, ["1", "2", "3", "4", "5"]);
    expect(split.precision).toBe(1);
    expect(split.recall).toBeCloseTo((4 * 0.5 + 1) / 5, 10);
  });

  it("matches the worked example of Amigó et al.: one wrong item in a cluster of three", () => {
    const r = bcubed(["a", "a", "b", "b", "b"], ["1", "1", "1", "2", "2"]);
    // precision: a,a: 2/3 each; b in cluster 1: 1/3; b,b: 1 each → (2/3·2 + 1/3 + 2) / 5
    expect(r.precision).toBeCloseTo((4 / 3 + 1 / 3 + 2) / 5, 10);
    // recall: a,a: 1 each; b alone: 1/3; b,b: 2/3 each → (2 + 1/3 + 4/3) / 5
    expect(r.recall).toBeCloseTo((2 + 1 / 3 + 4 / 3) / 5, 10);
  });

  it("orders the stream the same for a seed, differently for another", () => {
    const items = Array.from({ length: 50 }, (_, i) => i);
    expect(shuffled(items, 1)).toEqual(shuffled(items, 1));
    expect(shuffled(items, 1)).not.toEqual(shuffled(items, 2));
    expect([...shuffled(items, 3)].sort((a, b) => a - b)).toEqual(items);
    const r = seededRandom(7);
    expect(Array.from({ length: 1000 }, r).every((x) => x >= 0 && x < 1)).toBe(true);
  });
});
