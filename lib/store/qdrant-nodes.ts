import { QdrantClient } from "@qdrant/js-client-rest";
import { isTransient, TransientError } from "../runtime/errors.ts";

/** How the store's calls ride out a Qdrant node that is away (see `QdrantNodes`). */
export interface QdrantRetry {
  /** How long one call keeps trying, over every node and several rounds, before it fails (transiently). */
  retryMs: number;
  /** One request's bound: a frozen node fails the attempt and the call moves on, instead of hanging the stage. */
  timeoutMs: number;
}
export const DEFAULT_RETRY: QdrantRetry = { retryMs: 20_000, timeoutMs: 30_000 };
/** The first failure fails the call: for tests that play a process dying mid-operation. */
export const NO_RETRY: QdrantRetry = { retryMs: 0, timeoutMs: 30_000 };

/** What the calls met so far: attempts that failed and were tried again, and switches to another node. */
export interface QdrantNodeStats {
  calls: number;
  retried: number;
  failovers: number;
  /** Calls that failed even after their retries. */
  failed: number;
}

const FIRST_PAUSE_MS = 50;
const MAX_PAUSE_MS = 1_000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Whether an attempt failed for reasons of the server, not of the request, so the same request may succeed on
 * another node or a moment later: no connection (refused, reset: a node killed or restarting), a request that ran
 * out of time, a busy server (429), or a server-side failure (5xx: a node whose peer just died answers "service
 * internal error" until the cluster has marked that peer's copies dead). A 4xx other than 429 is the request's
 * own fault and fails at once. Every request the store sends is safe to send twice: writes are upserts by
 * deterministic id, deletes and payload updates of named points, and the unknown identities' conditional writes
 * re-check their condition.
 */
export function retriable(err: unknown): boolean {
  const e = err as { status?: unknown; name?: unknown };
  if (typeof e.status === "number") return e.status === 429 || e.status >= 500;
  if (e.name === "QdrantClientTimeoutError" || e.name === "QdrantClientResourceExhaustedError") return true;
  return isTransient(err);
}

/**
 * A Qdrant REST client over several nodes of one cluster (any node serves every collection), failing over
 * between them. Qdrant's own client talks to one URL, so a node killed under it fails every call until the node
 * is back. Here a call that fails retriably is sent to the next node at once; after a round over every node it
 * pauses (50 ms, doubling to 1 s) and goes round again, until `retryMs` has passed, and then fails with a
 * `TransientError` (a stage redelivers its batch rather than dead-lettering it). The node that answered stays
 * the one used (no switching back while it works), as immich's machine-learning repository keeps to a healthy
 * URL. One URL gets the same retries: a restart of a single server is ridden out too.
 */
export class QdrantNodes {
  readonly client: QdrantClient;
  readonly stats: QdrantNodeStats = { calls: 0, retried: 0, failovers: 0, failed: 0 };
  private readonly clients: QdrantClient[];
  private current = 0;

  constructor(
    readonly urls: string[],
    apiKey: string | undefined,
    private readonly retry: QdrantRetry = DEFAULT_RETRY,
    private readonly warn: (message: string) => void = () => {},
  ) {
    if (urls.length === 0) throw new Error("no Qdrant URL given");
    this.clients = urls.map(
      (url) => new QdrantClient({ url, apiKey, checkCompatibility: false, timeout: retry.timeoutMs }),
    );
    // Every method of the client, each call sent through `call`: the store keeps using the client's own API.
    this.client = new Proxy(this.clients[0]!, {
      get: (target, prop, receiver) => {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== "function") return value;
        return (...args: unknown[]) =>
          this.call((c) => (Reflect.get(c, prop) as (...a: unknown[]) => unknown).apply(c, args));
      },
    });
  }

  /** The node calls go to now. */
  get url(): string {
    return this.urls[this.current]!;
  }

  private async call<T>(send: (client: QdrantClient) => T): Promise<Awaited<T>> {
    this.stats.calls++;
    const deadline = Date.now() + this.retry.retryMs;
    let pause = FIRST_PAUSE_MS;
    for (let attempt = 1; ; attempt++) {
      const node = this.current;
      try {
        return await send(this.clients[node]!);
      } catch (err) {
        if (!retriable(err)) throw err;
        if (Date.now() >= deadline) {
          this.stats.failed++;
          throw new TransientError(
            `Qdrant did not answer within ${this.retry.retryMs} ms (${this.urls.join(", ")}): ${describe(err)}`,
            { cause: err },
          );
        }
        this.stats.retried++;
        // Calls in flight together fail together: only the first moves the others on, so none skips a node.
        if (this.urls.length > 1 && this.current === node) {
          this.current = (node + 1) % this.urls.length;
          this.stats.failovers++;
          this.warn(
            `vigil: Qdrant at ${this.urls[node]} failed (${describe(err)}); using ${this.urls[this.current]}\n`,
          );
        }
        if (attempt % this.urls.length === 0) {
          await sleep(Math.min(pause, Math.max(0, deadline - Date.now())));
          pause = Math.min(pause * 2, MAX_PAUSE_MS);
        }
      }
    }
  }
}

function describe(err: unknown): string {
  const e = err as {
    status?: unknown;
    message?: unknown;
    data?: { status?: { error?: unknown } };
    cause?: { code?: unknown; message?: unknown };
  };
  if (typeof e.status === "number")
    return `HTTP ${e.status}${e.data?.status?.error ? `: ${String(e.data.status.error)}` : ""}`;
  const cause = e.cause?.code ?? e.cause?.message;
  return `${String(e.message)}${cause ? ` (${String(cause)})` : ""}`;
}
