import type { FastifyReply, FastifyRequest } from "fastify";
import type { AlertRecord, AlertStore } from "../../lib/store/alert-store.ts";
import { decodeCursor, MAX_PAGE, type CursorPosition } from "../../lib/store/paging.ts";
import { alertEventId, type LiveAlert, type LiveFeed } from "./live.ts";

export interface StreamFilter {
  cameras?: string[];
  watchlists?: string[];
  personId?: string;
}

export interface StreamOptions {
  heartbeatMs: number;
  resumeSlackMs: number;
  maxBufferedBytes: number;
  /** Most alerts replayed from the store on a resume; a client further behind should page /v1/alerts. */
  maxReplay: number;
}

const matches = (a: AlertRecord, f: StreamFilter) =>
  (!f.cameras?.length || f.cameras.includes(a.cameraId)) &&
  (!f.watchlists?.length || f.watchlists.includes(a.watchlistId)) &&
  (!f.personId || f.personId === a.personId);

/** Checked before the stream opens, so a bad id is a plain 400. */
export function parseLastEventId(value: string): CursorPosition {
  return decodeCursor(value);
}

/**
 * Alerts the client missed since `lastEventId`. Exact when this process still holds that alert (arrival order,
 * nothing twice). Otherwise — a restart, another replica, or too long away — from the store: every alert
 * captured from `resumeSlackMs` before the last one seen, oldest first. That may repeat some the client has
 * (clients dedupe by alert id), but misses none that arrived late from a slower camera.
 */
async function missed(
  feed: LiveFeed,
  store: Pick<AlertStore, "listAlerts">,
  lastEventId: string,
  position: CursorPosition,
  filter: StreamFilter,
  options: StreamOptions,
): Promise<{ alerts: AlertRecord[]; exact: boolean }> {
  const kept = feed.after(lastEventId);
  if (kept) return { alerts: kept.map((k) => k.alert), exact: true };
  const since = position.ts - options.resumeSlackMs;
  const newestFirst: AlertRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.listAlerts({
      since,
      cameras: filter.cameras?.length ? filter.cameras : undefined,
      personId: filter.personId,
      limit: Math.min(MAX_PAGE, options.maxReplay + 1),
      cursor,
    });
    newestFirst.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor && newestFirst.length <= options.maxReplay);
  const alerts = newestFirst
    .filter((a) => a.id !== position.id)
    .reverse()
    .slice(-options.maxReplay);
  return { alerts, exact: false };
}

/**
 * The live alert stream: `text/event-stream`, one `alert` event per alert with its resume id, a comment line
 * every `heartbeatMs`. The reply is taken over from fastify (hijacked) and ends when the client goes away.
 */
export async function streamAlerts(
  request: FastifyRequest,
  reply: FastifyReply,
  deps: { feed: LiveFeed; store: Pick<AlertStore, "listAlerts">; options: StreamOptions },
  filter: StreamFilter,
  lastEventId: string | undefined,
  /** The alert as the API sends it (crop URLs added); on failure the stored alert is sent as it is. */
  out: (alert: AlertRecord) => Promise<object>,
): Promise<void> {
  const position = lastEventId ? parseLastEventId(lastEventId) : undefined;
  const { feed, store, options } = deps;
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    connection: "keep-alive",
    // nginx buffers responses by default, which would hold alerts back.
    "x-accel-buffering": "no",
    ...(reply.getHeader("access-control-allow-origin")
      ? { "access-control-allow-origin": String(reply.getHeader("access-control-allow-origin")) }
      : {}),
  });
  let closed = false;
  const sent = new Set<string>();
  const write = (chunk: string) => {
    if (closed) return;
    res.write(chunk);
    // A client that does not read is cut off rather than buffered without bound; it resumes by its last id.
    if (res.writableLength > options.maxBufferedBytes) {
      request.log.warn({ buffered: res.writableLength }, "api: slow event-stream client disconnected");
      close();
    }
  };
  // Alerts are written one after another, in the order they came, though `out` may wait on the store.
  let written = Promise.resolve();
  const send = (alert: AlertRecord) => {
    if (sent.has(alert.id) || !matches(alert, filter)) return;
    sent.add(alert.id);
    // Only what is needed to dedupe replays; the set stays small on a long-lived stream.
    if (sent.size > 10_000) sent.clear();
    written = written.then(async () => {
      if (closed) return;
      // Without `out`, nothing a viewer may not see: the matched enrolled photo is an operator's.
      let body: object = { ...alert, matchedFaceId: null };
      try {
        body = await out(alert);
      } catch (err) {
        request.log.warn({ err, alertId: alert.id }, "api: event-stream alert sent without its crop URLs");
      }
      write(`id: ${alertEventId(alert)}\nevent: alert\ndata: ${JSON.stringify(body)}\n\n`);
    });
  };
  // Live alerts that arrive while the replay is read wait here, so none falls between the two.
  let pending: LiveAlert[] | undefined = [];
  const unlisten = feed.listen((live) => (pending ? pending.push(live) : send(live.alert)));
  const heartbeat = setInterval(() => write(`: keep-alive ${Date.now()}\n\n`), options.heartbeatMs);
  const close = () => {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    unlisten();
    res.end();
  };
  request.raw.on("close", close);
  res.on("error", close);
  // The reconnection delay the browser's EventSource uses, and an opening comment so clients see the stream.
  write(`retry: 3000\n: vigil alerts\n\n`);
  try {
    if (lastEventId && position) {
      const { alerts, exact } = await missed(feed, store, lastEventId, position, filter, options);
      write(`: resumed ${exact ? "exactly from memory" : "from the store"}, ${alerts.length} alert(s)\n\n`);
      for (const a of alerts) send(a);
    }
  } catch (err) {
    request.log.error({ err }, "api: event-stream resume failed");
    write(`event: error\ndata: ${JSON.stringify({ message: "resume failed; page /v1/alerts" })}\n\n`);
  }
  const queued = pending;
  pending = undefined;
  for (const live of queued) send(live.alert);
}
