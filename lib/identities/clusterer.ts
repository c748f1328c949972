/** Where a face went: an identity it joined, or a new one it started. */
export interface Assignment {
  id: string;
  created: boolean;
  /** Cosine similarity to the identity's centroid before the face joined (1 for a new identity). */
  similarity: number;
}

const dot = (a: Float32Array, b: Float32Array) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};

/**
 * The assignment rule, the one place it lives (the eval's clusterer and both stores' live assignment use it): a
 * face joins the identity whose centroid it is most similar to when that similarity reaches `threshold`, else it
 * starts a new identity.
 *
 * Merging two strangers is the worse error (an operator would follow the wrong person), so the threshold is a
 * calibrated same-person operating point, never lower; a person split into two identities can be merged later.
 */
export function joinsIdentity(similarity: number | undefined, threshold: number): boolean {
  return similarity !== undefined && similarity >= threshold;
}

export function checkThreshold(threshold: number): number {
  if (!(threshold > -1 && threshold <= 1))
    throw new Error(`a threshold is a cosine in (-1, 1], got ${threshold}`);
  return threshold;
}

/**
 * Centroids are the normalised sums of their members' (unit) vectors: joining adds the vector to the sum, so an
 * identity's centroid drifts towards its typical look rather than its first one, at O(dim) per face. Two
 * identities merged have the sum of both, exactly as if every member had joined one of them (each centroid
 * weighted by its members).
 */
export function addToSum(sum: Float32Array, vector: Float32Array, sign: 1 | -1 = 1): Float32Array {
  for (let i = 0; i < vector.length; i++) sum[i]! += sign * vector[i]!;
  return sum;
}

/** The sum's direction (a zero sum stays zero: an identity with no members left matches nothing). */
export function centroidOf(sum: Float32Array): Float32Array {
  const norm = Math.sqrt(dot(sum, sum));
  return norm > 0 ? sum.map((x) => x / norm) : new Float32Array(sum.length);
}

/** The nearest of `centroids` by cosine (exact scan); undefined when there are none. */
export function nearestCentroid(
  vector: Float32Array,
  centroids: readonly Float32Array[],
): { index: number; similarity: number } | undefined {
  let index = -1;
  let similarity = -Infinity;
  centroids.forEach((c, i) => {
    const s = dot(vector, c);
    if (s > similarity) {
      similarity = s;
      index = i;
    }
  });
  return index < 0 ? undefined : { index, similarity };
}

interface Identity {
  id: string;
  sum: Float32Array;
  centroid: Float32Array;
  count: number;
}

/**
 * Online identity assignment in memory, one face (or sighting) at a time in arrival order, by the rule above:
 * `vigil eval cluster` measures it. Nearest-centroid search is an exact scan here; the stores run the same rule
 * live over their own nearest-centroid search (lib/store/identity-store.ts).
 */
export class OnlineClusterer {
  private readonly identities: Identity[] = [];
  private next = 1;

  constructor(
    readonly threshold: number,
    private readonly newId: (n: number) => string = (n) => `unknown-${n}`,
  ) {
    checkThreshold(threshold);
  }

  /** `vector` must be L2-normalised, like every embedding Vigil makes. */
  assign(vector: Float32Array): Assignment {
    const nearest = nearestCentroid(
      vector,
      this.identities.map((i) => i.centroid),
    );
    if (nearest && joinsIdentity(nearest.similarity, this.threshold)) {
      const best = this.identities[nearest.index]!;
      addToSum(best.sum, vector);
      best.centroid = centroidOf(best.sum);
      best.count++;
      return { id: best.id, created: false, similarity: nearest.similarity };
    }
    const id = this.newId(this.next++);
    this.identities.push({
      id,
      sum: Float32Array.from(vector),
      centroid: Float32Array.from(vector),
      count: 1,
    });
    return { id, created: true, similarity: 1 };
  }

  get size(): number {
    return this.identities.length;
  }

  /** Each identity's centroid and member count. */
  summary(): { id: string; centroid: Float32Array; count: number }[] {
    return this.identities.map(({ id, centroid, count }) => ({ id, centroid, count }));
  }
}
