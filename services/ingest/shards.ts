/**
 * Which ingest shard decodes a camera, when several ingest processes share one camera list: rendezvous (highest
 * random weight) hashing of the camera id. Every process computes the same answer from the id alone, no
 * coordination needed; going from n to n + 1 shards moves only the cameras the new shard wins (about 1/(n + 1)),
 * where `hash mod n` would reshuffle almost all of them.
 */
export function shardOf(cameraId: string, count: number): number {
  if (!Number.isInteger(count) || count < 1)
    throw new RangeError(`shard count must be a positive integer, not ${count}`);
  let best = 0;
  let bestWeight = -1;
  for (let shard = 0; shard < count; shard++) {
    const weight = mix(fnv1a(`${cameraId}\u0000${shard}`));
    if (weight > bestWeight) {
      best = shard;
      bestWeight = weight;
    }
  }
  return best;
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** A final avalanche (murmur3's), so ids that differ only in their last characters still spread evenly. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** The cameras shard `index` of `count` decodes. */
export function camerasOfShard<T extends { id: string }>(cameras: T[], index: number, count: number): T[] {
  return cameras.filter((c) => shardOf(c.id, count) === index);
}
