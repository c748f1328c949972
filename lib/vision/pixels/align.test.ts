import { describe, expect, it } from "vitest";
import { applyAffine, invertAffine, similarityTransform, warpAffine, type Affine } from "./align.ts";
import { type Point } from "../../geometry/index.ts";
import { footprintInside } from "./yuv.ts";

describe("similarity transform", () => {
  it("recovers a hand-computed rotation, scale and translation exactly", () => {
    // x' = s·R(θ)·x + t with s = 2, θ = 90°, t = (10, 5): (1,0) → (10,7), (0,1) → (8,5), (0,0) → (10,5)
    const src: Point[] = [
      [0, 0],
      [1, 0],
      [0, 1],
      [2, 3],
    ];
    const dst: Point[] = [
      [10, 5],
      [10, 7],
      [8, 5],
      [4, 9],
    ];
    const m = similarityTransform(src, dst);
    expect(m[0]).toBeCloseTo(0, 10); // s·cosθ
    expect(m[1]).toBeCloseTo(-2, 10); // −s·sinθ
    expect(m[2]).toBeCloseTo(10, 10);
    expect(m[3]).toBeCloseTo(2, 10); // s·sinθ
    expect(m[4]).toBeCloseTo(0, 10);
    expect(m[5]).toBeCloseTo(5, 10);
  });

  it("is the identity for identical point sets and a pure scale for scaled ones", () => {
    const pts: Point[] = [
      [30, 50],
      [65, 50],
      [48, 70],
      [33, 92],
      [62, 92],
    ];
    const id = similarityTransform(pts, pts);
    [1, 0, 0, 0, 1, 0].forEach((v, i) => expect(id[i]).toBeCloseTo(v, 10));
    const halved = similarityTransform(
      pts,
      pts.map(([x, y]) => [x / 2, y / 2] as Point),
    );
    [0.5, 0, 0, 0, 0.5, 0].forEach((v, i) => expect(halved[i]).toBeCloseTo(v, 10));
  });

  it("gives the least-squares fit for noisy points (mean residual stays small, centroid maps to centroid)", () => {
    const template: Point[] = [
      [38.29, 51.69],
      [73.53, 51.5],
      [56.02, 71.73],
      [41.54, 92.36],
      [70.72, 92.2],
    ];
    const theta = 0.3;
    const noisy = template.map(([x, y], i) => {
      const rx = Math.cos(theta) * x - Math.sin(theta) * y;
      const ry = Math.sin(theta) * x + Math.cos(theta) * y;
      return [3 * rx + 100 + (i % 2 ? 0.4 : -0.4), 3 * ry + 40] as Point;
    });
    const m = similarityTransform(noisy, template);
    const mapped = noisy.map((p) => applyAffine(m, p));
    const residual =
      mapped.reduce((s, p, i) => s + Math.hypot(p[0] - template[i]![0], p[1] - template[i]![1]), 0) / 5;
    expect(residual).toBeLessThan(0.2);
    expect(Math.hypot(m[0], m[3])).toBeCloseTo(1 / 3, 2);
    const cx = (pts: Point[]) => pts.reduce((s, p) => s + p[0], 0) / pts.length;
    expect(cx(mapped)).toBeCloseTo(cx(template), 8);
  });

  it("inverts affines", () => {
    const m = similarityTransform(
      [
        [0, 0],
        [1, 0],
      ],
      [
        [5, 5],
        [5, 8],
      ],
    );
    const back = applyAffine(invertAffine(m), applyAffine(m, [7, -3]));
    expect(back[0]).toBeCloseTo(7, 10);
    expect(back[1]).toBeCloseTo(-3, 10);
  });
});

describe("warpAffine", () => {
  it("samples the source where the inverse transform points, bilinearly", () => {
    // 4×1 gradient image, values 0, 100, 200, 250 in every channel
    const data = new Uint8Array([0, 0, 0, 100, 100, 100, 200, 200, 200, 250, 250, 250]);
    const shift = warpAffine({ width: 4, height: 1, data }, [1, 0, -0.5, 0, 1, 0], 3, 1);
    // output u samples source x = u + 0.5 → halfway between neighbours
    expect(Array.from(shift.data.filter((_, i) => i % 3 === 0))).toEqual([50, 150, 225]);
    const doubled = warpAffine({ width: 4, height: 1, data }, [2, 0, 0, 0, 2, 0], 4, 1);
    expect(Array.from(doubled.data.filter((_, i) => i % 3 === 0))).toEqual([0, 50, 100, 150]);
  });

  it("warps a face well inside the frame (the loop without edge checks) as bilinear sampling says", () => {
    const W = 64;
    const H = 48;
    const data = Uint8Array.from({ length: W * H * 3 }, (_, i) => (i * 37 + ((i / 3) | 0) * 11) % 256);
    const angle = 0.3;
    const m = (tx: number, ty: number): Affine => [
      Math.cos(angle) * 0.8,
      -Math.sin(angle) * 0.8,
      tx,
      Math.sin(angle) * 0.8,
      Math.cos(angle) * 0.8,
      ty,
    ];
    expect(footprintInside({ width: W, height: H }, invertAffine(m(-20, -15)), 16, 16)).toBe(true);
    const inside = warpAffine({ width: W, height: H, data }, m(-20, -15), 16, 16);
    const reference = (u: number, v: number, ch: number) => {
      const [a, b, tx, c, d, ty] = invertAffine(m(-20, -15));
      const x = a * u + b * v + tx;
      const y = c * u + d * v + ty;
      const x0 = Math.floor(x);
      const y0 = Math.floor(y);
      const fx = x - x0;
      const fy = y - y0;
      const at = (xx: number, yy: number) => data[(yy * W + xx) * 3 + ch]!;
      const top = at(x0, y0) * (1 - fx) + at(x0 + 1, y0) * fx;
      const bottom = at(x0, y0 + 1) * (1 - fx) + at(x0 + 1, y0 + 1) * fx;
      return top * (1 - fy) + bottom * fy;
    };
    let worst = 0;
    for (let v = 0; v < 16; v++)
      for (let u = 0; u < 16; u++)
        for (let ch = 0; ch < 3; ch++)
          worst = Math.max(worst, Math.abs(inside.data[(v * 16 + u) * 3 + ch]! - reference(u, v, ch)));
    // Rounded to the nearest level: never more than half a level from the exact value.
    expect(worst).toBeLessThanOrEqual(0.5 + 1e-9);
  });
});
