import type { Me } from "./types.ts";

/** A refusal or failure from the API, with the status and the API's own message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly body: unknown,
  ) {
    super(message);
  }
}

export type Query = Record<string, string | number | boolean | string[] | undefined | null>;

function queryString(q: Query | undefined): string {
  if (!q) return "";
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) for (const item of v) params.append(k, item);
    else params.append(k, String(v));
  }
  const s = params.toString();
  return s ? `?${s}` : "";
}

/**
 * The documented API on the page's own origin, with the operator's key on every call. Images are fetched the
 * same way (an <img src> cannot carry the key) and kept as blob: URLs, a few hundred at most.
 */
export class Api {
  private images = new Map<string, Promise<string>>();
  /** Called on a 401: the key was revoked or is wrong; the console signs out. */
  onUnauthorized: (message: string) => void = () => {};

  constructor(readonly key: string) {}

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return { authorization: `Bearer ${this.key}`, ...extra };
  }

  async request<T>(
    method: string,
    path: string,
    options: { query?: Query; json?: unknown; form?: FormData } = {},
  ): Promise<T> {
    const init: RequestInit = { method, headers: this.headers() };
    if (options.json !== undefined) {
      init.headers = this.headers({ "content-type": "application/json" });
      init.body = JSON.stringify(options.json);
    } else if (options.form) init.body = options.form;
    const res = await fetch(`${path}${queryString(options.query)}`, init);
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    let body: unknown = undefined;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    if (!res.ok) {
      const b = (body ?? {}) as { error?: string; message?: string };
      const message = b.message ?? `${method} ${path}: HTTP ${res.status}`;
      if (res.status === 401) this.onUnauthorized(message);
      throw new ApiError(res.status, b.error ?? String(res.status), message, body);
    }
    return body as T;
  }

  get<T>(path: string, query?: Query) {
    return this.request<T>("GET", path, { query });
  }
  post<T>(path: string, json?: unknown) {
    return this.request<T>("POST", path, { json: json ?? {} });
  }
  put<T>(path: string, json: unknown) {
    return this.request<T>("PUT", path, { json });
  }
  del(path: string) {
    return this.request<void>("DELETE", path);
  }
  upload<T>(path: string, form: FormData) {
    return this.request<T>("POST", path, { form });
  }

  me() {
    return this.get<Me>("/v1/me");
  }

  /**
   * A clip (`clipUrl`) as a blob: URL a `<video>` plays and seeks in, with its wall-clock span from the headers;
   * the API's reason when there is none (not cut yet, not recorded, expired).
   */
  async clip(path: string): Promise<{
    url: string;
    start: number;
    end: number;
    short: string | null;
    frame: { width: number; height: number } | null;
  }> {
    const res = await fetch(path, { headers: this.headers() });
    if (!res.ok) throw await binaryFailure(res);
    const short = res.headers.get("vigil-clip-short");
    const frame = /^(\d+)x(\d+)$/.exec(res.headers.get("vigil-clip-frame") ?? "");
    return {
      url: URL.createObjectURL(await res.blob()),
      start: Number(res.headers.get("vigil-clip-start")),
      end: Number(res.headers.get("vigil-clip-end")),
      short: short ? decodeURIComponent(short) : null,
      frame: frame ? { width: Number(frame[1]), height: Number(frame[2]) } : null,
    };
  }

  /** A JPEG route (crop, snapshot) as a blob: URL; `fresh` skips the cache (snapshots change). */
  image(path: string, fresh = false): Promise<string> {
    const cached = !fresh && this.images.get(path);
    if (cached) return cached;
    const loading = (async () => {
      const res = await fetch(path, { headers: this.headers(), cache: fresh ? "no-store" : "default" });
      if (!res.ok) throw await binaryFailure(res);
      return URL.createObjectURL(await res.blob());
    })();
    if (!fresh) {
      this.images.set(path, loading);
      loading.catch(() => this.images.delete(path));
      if (this.images.size > 500) {
        const [oldest, url] = this.images.entries().next().value as [string, Promise<string>];
        this.images.delete(oldest);
        void url.then((u) => URL.revokeObjectURL(u)).catch(() => {});
      }
    }
    return loading;
  }
}

export const cropOfSighting = (id: string) => `/v1/sightings/${encodeURIComponent(id)}/crop`;
export const enc = encodeURIComponent;

/** A failed image or video request as an ApiError, with the API's reason when it sent one. */
async function binaryFailure(res: Response): Promise<ApiError> {
  let message = `HTTP ${res.status}`;
  try {
    message = ((await res.json()) as { message?: string }).message ?? message;
  } catch {
    /* not JSON */
  }
  return new ApiError(res.status, String(res.status), message, undefined);
}
