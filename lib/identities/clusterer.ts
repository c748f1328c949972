/** Where a face went: an identity it joined, or a new one it started. */
export interface Assignment {
  id: string;
  created: boolean;
  /** Cosine similarity to the identity's centroid before the face joined (1 for a new identity). */
  similarity: number;
}

interface Identity {
  id: string;
  /** Sum of the member vectors: the centroid is its direction, so joining is O(dim). */
  sum: Float32Array;
  centroid: Float32Array;
  count: number;
}

const dot = (a: Float32Array, b: Float32Array) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};

/**
 * Online identity assignment, one face (or sighting) at a time in arrival order: it joins the identity whose
 * centroid it is most similar to when that similarity reaches `threshold`, else it starts a new identity.
 * Centroids are the normalised sums of their members, updated as each joins, so an identity's centroid drifts
 * towards its typical look rather than its first one.
 *
 * Merging two strangers is the worse error (an operator would follow the wrong person), so the threshold is a
 * calibrated same-person operating point, never lower; a person split into two identities can be merged later.
 * Nearest-centroid search is exact here (a scan): the store's vector search takes its place at scale.
 */
export class OnlineClusterer {
  private readonly identities: Identity[] = [];
  private next = 1;

  constructor(
    readonly threshold: number,
    private readonly newId: (n: number) => string = (n) => `unknown-${n}`,
  ) {
    if (!(threshold > -1 && threshold <= 1))
      throw new Error(`a threshold is a cosine in (-1, 1], got ${threshold}`);
  }

  /** `vector` must be L2-normalised, like every embedding Vigil makes. */
  assign(vector: Float32Array): Assignment {
    let best: Identity | undefined;
    let bestScore = -Infinity;
    for (const identity of this.identities) {
      const s = dot(vector, identity.centroid);
      if (s > bestScore) {
        bestScore = s;
        best = identity;
      }
    }
    if (best && bestScore >= this.threshold) {
      for (let i = 0; i < vector.length; i++) best.sum[i]! += vector[i]!;
      const norm = Math.sqrt(dot(best.sum, best.sum)) || 1;
      for (let i = 0; i < vector.length; i++) best.centroid[i] = best.sum[i]! / norm;
      best.count++;
      return { id: best.id, created: false, similarity: bestScore };
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
