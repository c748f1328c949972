import { describe, expect, it } from "vitest";
import { l2normalize } from "../geometry/index.ts";
import { OnlineClusterer } from "./clusterer.ts";

const v = (...x: number[]) => l2normalize(Float32Array.from(x));

describe("OnlineClusterer", () => {
  it("joins a face to the nearest identity at or above the threshold, else starts a new one", () => {
    const c = new OnlineClusterer(0.9);
    expect(c.assign(v(1, 0, 0))).toEqual({ id: "unknown-1", created: true, similarity: 1 });
    expect(c.assign(v(0, 1, 0))).toMatchObject({ id: "unknown-2", created: true });
    const joined = c.assign(v(1, 0.1, 0));
    expect(joined).toMatchObject({ id: "unknown-1", created: false });
    expect(joined.similarity).toBeCloseTo(0.995, 3);
    expect(c.assign(v(1, 1, 0))).toMatchObject({ created: true });
    expect(c.size).toBe(3);
  });

  it("moves the centroid towards the identity's members as they join", () => {
    const c = new OnlineClusterer(0.8);
    c.assign(v(1, 0, 0));
    c.assign(v(1, 0.5, 0));
    const [first] = c.summary();
    expect(first!.count).toBe(2);
    expect(Math.hypot(...first!.centroid)).toBeCloseTo(1, 5);
    expect(first!.centroid[1]).toBeGreaterThan(0.2);
    // A face the first member alone would refuse now joins: the centroid has moved its way.
    const face = v(0.75, 0.66, 0);
    expect(face[0]!).toBeLessThan(0.8);
    expect(c.assign(face)).toMatchObject({ id: "unknown-1", created: false });
  });

  it("refuses a threshold that is not a cosine", () => {
    expect(() => new OnlineClusterer(1.5)).toThrow(/cosine/);
    expect(() => new OnlineClusterer(Number.NaN)).toThrow(/cosine/);
  });
});
