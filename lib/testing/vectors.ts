import { seededRandom } from "../eval/cluster.ts";
import { l2normalize } from "../geometry/index.ts";

/** A random unit vector per seed: in 32 or more dimensions two of them are nearly orthogonal, like two strangers. */
export function randomUnit(seed: number, dim = 32): Float32Array {
  const random = seededRandom(seed);
  return l2normalize(new Float32Array(dim).map(() => random() - 0.5));
}

/** The same face seen again: `v` moved by seeded noise (`spread` 0.3 in 64 dimensions gives cosine ≈ 0.95). */
export function nearUnit(v: Float32Array, seed: number, spread = 0.3): Float32Array {
  const noise = randomUnit(seed + 10_000, v.length);
  return l2normalize(v.map((x, k) => x + spread * noise[k]!));
}
