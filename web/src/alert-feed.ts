import type { Api } from "./api.ts";
import type { Alert, Page } from "./types.ts";

export type FeedState = "connecting" | "live" | "reconnecting" | "stopped";

/**
 * The live alerts: /v1/alerts/stream read with fetch (EventSource cannot send the API key), plus the newest
 * stored alerts. The stream is opened before the stored page is read, so an alert raised in between arrives
 * on one or the other; both land in one map keyed by alert id, so replays after a reconnect (the server
 * resumes from Last-Event-ID and may repeat a few) never show twice.
 */
export class AlertFeed extends EventTarget {
  readonly alerts = new Map<string, Alert>();
  state: FeedState = "stopped";
  /** Alerts the stream repeated and the map absorbed (a resume that overlapped): shown for the curious. */
  duplicates = 0;
  reconnects = 0;
  private lastEventId: string | undefined;
  private abort: AbortController | undefined;
  private retryMs = 3000;
  private stopped = true;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly api: Api) {
    super();
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    void this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.abort?.abort();
    this.setState("stopped");
  }

  /** Drops the connection and opens it again at once (resuming from the last event), as a network blip would. */
  reconnect() {
    this.abort?.abort();
  }

  /** Newest first. */
  list(): Alert[] {
    return [...this.alerts.values()].sort((a, b) => b.ts - a.ts || (a.id < b.id ? 1 : -1));
  }

  upsert(alert: Alert, fromStream = false) {
    const had = this.alerts.get(alert.id);
    if (had && fromStream) this.duplicates++;
    // An acknowledgement never goes back: a replayed copy from before it must not undo it on screen.
    const merged =
      had?.acknowledged && !alert.acknowledged ? { ...alert, acknowledged: had.acknowledged } : alert;
    this.alerts.set(alert.id, merged);
    this.dispatchEvent(new CustomEvent("change"));
    if (!had && fromStream) this.dispatchEvent(new CustomEvent<Alert>("new-alert", { detail: merged }));
  }

  private setState(state: FeedState) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("change"));
  }

  private async loadStored() {
    const page = await this.api.get<Page<Alert>>("/v1/alerts", { limit: 100 });
    for (const a of page.items) if (!this.alerts.has(a.id)) this.upsert(a);
  }

  private async connect() {
    while (!this.stopped) {
      const abort = new AbortController();
      this.abort = abort;
      this.setState(this.reconnects === 0 && this.state !== "reconnecting" ? "connecting" : "reconnecting");
      try {
        const headers = this.api.headers({ accept: "text/event-stream" });
        if (this.lastEventId) headers["last-event-id"] = this.lastEventId;
        const res = await fetch("/v1/alerts/stream", { headers, signal: abort.signal, cache: "no-store" });
        if (res.status === 401 || res.status === 403) {
          this.api.onUnauthorized(`the alert stream refused this key (HTTP ${res.status})`);
          this.stop();
          return;
        }
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        this.setState("live");
        // Without a resume position the stream only carries what is new: the stored page fills the rest.
        if (!this.lastEventId) void this.loadStored().catch(() => {});
        await this.read(res.body);
      } catch {
        /* a dropped connection: wait, then resume from the last event */
      }
      if (this.stopped) return;
      this.reconnects++;
      this.setState("reconnecting");
      await new Promise((r) => (this.timer = setTimeout(r, abort.signal.aborted ? 100 : this.retryMs)));
    }
  }

  /** Server-Sent Events framing: fields up to a blank line make one event. */
  private async read(body: ReadableStream<Uint8Array>) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buffer += value;
      let cut: number;
      while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
        this.event(block);
      }
    }
  }

  private event(block: string) {
    let id: string | undefined;
    let type = "message";
    const data: string[] = [];
    for (const line of block.split(/\r?\n/)) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id") id = value;
      else if (field === "event") type = value;
      else if (field === "data") data.push(value);
      else if (field === "retry" && /^\d+$/.test(value)) this.retryMs = Number(value);
    }
    if (id) this.lastEventId = id;
    if (type === "alert" && data.length) {
      try {
        this.upsert(JSON.parse(data.join("\n")) as Alert, true);
      } catch {
        /* a malformed event is skipped; the next one carries on */
      }
    }
  }
}
