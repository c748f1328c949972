import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import https from "node:https";
import path from "node:path";
import type { TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeyService, cliActor } from "../lib/api/keys.ts";
import { MemoryBus } from "../lib/bus/index.ts";
import { SqliteApiStore } from "../lib/store/sqlite-api-store.ts";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import type { RunningApi } from "../services/api/index.ts";
import { alertEventId } from "../services/api/live.ts";
import { alertMessage, listeningApi, publishAlerts } from "./api-harness.ts";
import { tempDir, testConfig } from "./helpers.ts";

interface SseEvent {
  id?: string;
  event?: string;
  data?: string;
  comment?: string;
}

/** A minimal EventSource over fetch: the real wire format, parsed as a browser would. */
async function openStream(url: string, headers: Record<string, string>) {
  const abort = new AbortController();
  const res = await fetch(url, { headers, signal: abort.signal });
  const events: SseEvent[] = [];
  let wake: (() => void) | undefined;
  if (res.ok && res.body) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    void (async () => {
      let buffer = "";
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const e: SseEvent = {};
            for (const line of block.split("\n")) {
              if (line.startsWith(":")) e.comment = `${e.comment ?? ""}${line.slice(1).trim()}`;
              else {
                const at = line.indexOf(":");
                const field = line.slice(0, at);
                const value = line.slice(at + 1).replace(/^ /, "");
                if (field === "id" || field === "event" || field === "data") e[field] = value;
              }
            }
            events.push(e);
            wake?.();
          }
        }
      } catch {
        // aborted
      }
    })();
  }
  const alerts = () => events.filter((e) => e.event === "alert");
  return {
    res,
    events,
    alerts,
    ids: () => alerts().map((e) => (JSON.parse(e.data!) as { id: string }).id),
    /** Resolves once `n` alert events have arrived. */
    async waitFor(n: number, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (alerts().length < n) {
        if (Date.now() > deadline) throw new Error(`waited for ${n} alerts, got ${alerts().length}`);
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 50);
        });
      }
    },
    close: () => abort.abort(),
  };
}

const settle = (ms = 150) => new Promise((r) => setTimeout(r, ms));

describe("the live alert stream over a real socket (Server-Sent Events)", () => {
  const dir = tempDir("vigil-sse-");
  const file = path.join(dir, "vigil.db");
  const config = testConfig({
    "store.path": file,
    "api.sse.heartbeatS": 0.2,
    "api.sse.resumeSlackS": 2,
    "api.sse.replay": 100,
  });
  const store = new SqliteStore(file, { refreshMs: 0 });
  const apiStore = new SqliteApiStore(file);
  const bus = new MemoryBus({ capacity: 64 });
  let api: RunningApi;
  let key: string;
  let headers: Record<string, string>;
  const t0 = Date.now() - 60_000;

  const start = () => listeningApi({ config, bus, store, apiStore }, "api-sse");

  beforeAll(async () => {
    api = await start();
    key = (await new KeyService(apiStore, apiStore).create({ name: "wall", role: "viewer" }, cliActor())).key;
    headers = { authorization: `Bearer ${key}` };
  });
  afterAll(async () => {
    await api?.stop();
    await bus.close();
    apiStore.close();
    store.close();
  });

  it("refuses a stream without a key (401) and a malformed Last-Event-ID (400) as plain answers", async () => {
    expect((await fetch(`${api.url}/v1/alerts/stream`)).status).toBe(401);
    const bad = await fetch(`${api.url}/v1/alerts/stream`, {
      headers: { ...headers, "last-event-id": "???" },
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toContain("not a paging cursor");
  });

  let lastSeen: string;

  it("delivers each alert once it is stored, with its resume id, and keeps the stream alive", async () => {
    const s = await openStream(`${api.url}/v1/alerts/stream`, headers);
    expect(s.res.status).toBe(200);
    expect(s.res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    await settle();
    await publishAlerts(bus, [
      alertMessage("al-1", "door", "ann", t0 + 1000),
      alertMessage("al-2", "yard", "bo", t0 + 2000),
      alertMessage("al-3", "door", "ann", t0 + 3000),
    ]);
    await s.waitFor(3);
    expect(s.ids()).toEqual(["al-1", "al-2", "al-3"]);
    const first = JSON.parse(s.alerts()[0]!.data!);
    expect(first).toMatchObject({
      id: "al-1",
      personId: "ann",
      cameraId: "door",
      cropUrl: "/v1/alerts/al-1/crop",
    });
    // Stored before it was streamed: the operator can act on it at once.
    expect((await store.getAlert("al-1"))?.personId).toBe("ann");
    // A replayed alert (at-least-once bus) is not streamed twice.
    await publishAlerts(bus, [alertMessage("al-3", "door", "ann", t0 + 3000)]);
    await settle(500);
    expect(s.ids()).toEqual(["al-1", "al-2", "al-3"]);
    expect(s.events.some((e) => e.comment?.startsWith("keep-alive"))).toBe(true);
    lastSeen = s.alerts()[2]!.id!;
    s.close();
    await settle();
    expect(api.feed.listenerCount).toBe(0);
  });

  it("resumes exactly from Last-Event-ID while the API still holds that alert, then goes on live", async () => {
    await publishAlerts(bus, [
      alertMessage("al-4", "yard", "cy", t0 + 4000),
      alertMessage("al-5", "door", "ann", t0 + 5000),
    ]);
    await bus.drain();
    const s = await openStream(`${api.url}/v1/alerts/stream`, { ...headers, "last-event-id": lastSeen });
    await s.waitFor(2);
    expect(s.ids()).toEqual(["al-4", "al-5"]);
    expect(s.events.some((e) => e.comment?.includes("exactly from memory, 2 alert(s)"))).toBe(true);
    await publishAlerts(bus, [alertMessage("al-6", "door", "ann", t0 + 6000)]);
    await s.waitFor(3);
    expect(s.ids()).toEqual(["al-4", "al-5", "al-6"]);
    s.close();
  });

  it("filters by camera, watchlist and person, live and on resume", async () => {
    const s = await openStream(
      `${api.url}/v1/alerts/stream?camera=door&lastEventId=${encodeURIComponent(lastSeen)}`,
      headers,
    );
    await s.waitFor(2);
    expect(s.ids()).toEqual(["al-5", "al-6"]);
    await publishAlerts(bus, [
      alertMessage("al-7", "yard", "cy", t0 + 7000),
      alertMessage("al-8", "door", "bo", t0 + 8000),
    ]);
    await s.waitFor(3);
    expect(s.ids()).toEqual(["al-5", "al-6", "al-8"]);
    s.close();
  });

  it("after a restart, resumes from the store: nothing missed, including a late alert from a slower camera", async () => {
    // Stopping does not wait for open streams: they are ended with the server.
    const open = await openStream(`${api.url}/v1/alerts/stream`, headers);
    await settle();
    const stopped = Date.now();
    await api.stop();
    expect(Date.now() - stopped).toBeLessThan(2000);
    open.close();
    // While the API is down: alerts keep coming, one of them captured before the last one the client saw.
    await publishAlerts(bus, [
      alertMessage("al-9", "yard", "cy", t0 + 9000),
      alertMessage("al-late", "lobby", "dan", t0 + 7500),
    ]);
    api = await start();
    await bus.drain();
    // al-8's id as the previous process sent it: ids are positions, the same in every process.
    const s = await openStream(`${api.url}/v1/alerts/stream`, {
      ...headers,
      "last-event-id": alertEventId({ ts: t0 + 8000, id: "al-8" }),
    });
    await s.waitFor(4);
    await settle(200);
    expect(s.events.some((e) => e.comment?.includes("from the store, 4 alert(s)"))).toBe(true);
    // Oldest first from 2 s (resumeSlackS) before al-8: al-6 and al-7 again (the client dedupes by id), the late
    // alert it would otherwise never have seen, and al-9; not al-8 itself.
    expect(s.ids()).toEqual(["al-6", "al-7", "al-late", "al-9"]);
    s.close();
  });
});

describe("TLS served by the API itself (api.tls)", () => {
  it("serves HTTPS with the configured certificate", async () => {
    const dir = tempDir("vigil-tls-");
    const cert = path.join(dir, "cert.pem");
    const keyFile = path.join(dir, "key.pem");
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        keyFile,
        "-out",
        cert,
      ],
      { stdio: "ignore" },
    );
    const file = path.join(dir, "vigil.db");
    const config = testConfig({ "store.path": file, "api.tls.cert": cert, "api.tls.key": keyFile });
    const store = new SqliteStore(file, { refreshMs: 0 });
    const apiStore = new SqliteApiStore(file);
    const bus = new MemoryBus({ capacity: 8 });
    const api = await listeningApi({ config, bus, store, apiStore }, "api-tls");
    try {
      expect(api.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const { status, body, peerCertificate } = await new Promise<{
        status: number;
        body: string;
        peerCertificate: string;
      }>((resolve, reject) =>
        https
          .get(`${api.url}/healthz`, { ca: readFileSync(cert) }, (res) => {
            // Read while the socket is still attached to the response.
            const peerCertificate = (res.socket as TLSSocket).getPeerCertificate().subject.CN as string;
            let body = "";
            res.on("data", (c: Buffer) => (body += c.toString()));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body, peerCertificate }));
          })
          .on("error", reject),
      );
      expect({ status, body, peerCertificate }).toEqual({
        status: 200,
        body: "ok\n",
        peerCertificate: "127.0.0.1",
      });
    } finally {
      await api.stop();
      await bus.close();
      apiStore.close();
      store.close();
    }
  });
});
