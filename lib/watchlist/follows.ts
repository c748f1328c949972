import type { Config } from "../config/index.ts";
import type { StateStore } from "../store/state-store.ts";

/** A person (or unknown identity) followed live: every alert on them goes out, cool-down or not, until `until`. */
export interface Follow {
  personId: string;
  until: number;
  by: string;
  since: number;
}

const PREFIX = "follow/";

/**
 * Who is followed, kept in the store's state (so every match replica and the API agree, across restarts). The
 * match stage asks on every alert it would hold back for the cool-down: answers are cached for `cacheMs`, so a
 * follow takes effect within that.
 */
export class Follows {
  private cached: { at: number; follows: Map<string, Follow> } | undefined;

  constructor(
    private readonly state: StateStore,
    private readonly clock: () => number = Date.now,
    private readonly cacheMs = 2000,
  ) {}

  async follow(personId: string, forMs: number, by: string): Promise<Follow> {
    const now = this.clock();
    const f: Follow = { personId, until: now + forMs, by, since: now };
    await this.state.saveState(PREFIX + personId, new TextEncoder().encode(JSON.stringify(f)));
    this.cached = undefined;
    return f;
  }

  async unfollow(personId: string): Promise<boolean> {
    this.cached = undefined;
    return this.state.deleteState(PREFIX + personId);
  }

  /** Follows still running; expired ones are deleted as they are found. */
  async list(): Promise<Follow[]> {
    const now = this.clock();
    const out: Follow[] = [];
    for (const key of await this.state.stateKeys(PREFIX)) {
      const bytes = await this.state.loadState(key);
      if (!bytes) continue;
      const f = JSON.parse(new TextDecoder().decode(bytes)) as Follow;
      if (f.until > now) out.push(f);
      else await this.state.deleteState(key);
    }
    return out;
  }

  async isFollowed(personId: string): Promise<boolean> {
    const now = this.clock();
    if (!this.cached || now - this.cached.at > this.cacheMs)
      this.cached = { at: now, follows: new Map((await this.list()).map((f) => [f.personId, f])) };
    return (this.cached.follows.get(personId)?.until ?? 0) > now;
  }
}

/**
 * Where someone seen on `cameraId` may appear next, nearest first, from the camera map (`cameras[].neighbours`
 * with typical transit seconds; a neighbour listed on either camera counts).
 */
export function nextCameras(
  config: Pick<Config, "cameras">,
  cameraId: string,
): { cameraId: string; transitS: number | null }[] {
  const out = new Map<string, number | null>();
  for (const n of config.cameras.find((c) => c.id === cameraId)?.neighbours ?? [])
    out.set(n.id, n.transitS ?? null);
  for (const c of config.cameras)
    for (const n of c.neighbours ?? [])
      if (n.id === cameraId && !out.has(c.id)) out.set(c.id, n.transitS ?? null);
  return [...out]
    .map(([id, transitS]) => ({ cameraId: id, transitS }))
    .sort((a, b) => (a.transitS ?? Infinity) - (b.transitS ?? Infinity));
}
