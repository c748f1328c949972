/**
 * Per-key token buckets: `burst` requests at once, refilled at `perMinute`. In memory, per process: with several
 * API replicas behind a balancer each enforces its own share, which bounds a key at replicas × the limit.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number; perMinute: number }>();

  constructor(
    private readonly defaults: { perMinute: number; burst: number },
    private readonly clock: () => number = Date.now,
  ) {}

  /** Takes a token for `key`; when none is left, how many seconds until one is. */
  take(key: string, perMinute = this.defaults.perMinute): { ok: true } | { ok: false; retryAfterS: number } {
    const now = this.clock();
    const burst = Math.min(this.defaults.burst, perMinute);
    let bucket = this.buckets.get(key);
    if (!bucket || bucket.perMinute !== perMinute) {
      bucket = { tokens: burst, at: now, perMinute };
      this.buckets.set(key, bucket);
    }
    const rate = perMinute / 60_000;
    bucket.tokens = Math.min(burst, bucket.tokens + (now - bucket.at) * rate);
    bucket.at = now;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterS: Math.max(1, Math.ceil((1 - bucket.tokens) / rate / 1000)) };
  }
}
