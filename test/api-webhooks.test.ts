import { createServer, type IncomingMessage, type Server } from "node:http";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliActor, KeyService } from "../lib/api/keys.ts";
import { MemoryBus, type BusRecord } from "../lib/bus/index.ts";
import { DeadLetterContract, Topics } from "../lib/contracts/index.ts";
import { SqliteApiStore } from "../lib/store/sqlite-api-store.ts";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import type { RunningApi } from "../services/api/index.ts";
import { verifySignature } from "../services/api/webhooks.ts";
import {
  BLUE,
  RED,
  alertMessage,
  enrolColours,
  listeningApi,
  matchAndPublish,
  meanColour,
  publishAlerts,
  vec,
} from "./api-harness.ts";
import { tempDir, testConfig } from "./helpers.ts";
import { until } from "../lib/testing/process.ts";

interface Received {
  path: string;
  headers: IncomingMessage["headers"];
  body: string;
  at: number;
}

/** A local receiver: each path answers from its script (status codes in turn, the last one repeating). */
class Receiver {
  readonly received: Received[] = [];
  readonly scripts = new Map<string, (number | "hang")[]>();
  private server: Server | undefined;
  url = "";

  async start() {
    this.server = createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        const p = req.url ?? "/";
        this.received.push({ path: p, headers: req.headers, body, at: Date.now() });
        const script = this.scripts.get(p) ?? [200];
        const next = script.length > 1 ? script.shift()! : script[0]!;
        if (next === "hang") return;
        res.writeHead(next, { "content-type": "text/plain" }).end("thanks");
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", () => r()));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  to(p: string) {
    return this.received.filter((r) => r.path === p);
  }

  async stop() {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => this.server?.close(() => r()));
  }
}

describe("webhooks: signed, retried with backoff, logged, dead-lettered, never in the pipeline's way", () => {
  const dir = tempDir("vigil-webhooks-");
  const file = path.join(dir, "vigil.db");
  const config = testConfig({
    "store.path": file,
    "api.webhooks.backoffMs": 40,
    "api.webhooks.maxBackoffMs": 200,
    "api.webhooks.maxAttempts": 3,
    "api.webhooks.timeoutMs": 300,
    // The tests poll the delivery log; rate limits have a test of their own.
    "api.rateLimit.burst": 100_000,
    "api.rateLimit.perMinute": 1_000_000,
    "log.level": "error",
  });
  const store = new SqliteStore(file, { refreshMs: 0 });
  const apiStore = new SqliteApiStore(file);
  const bus = new MemoryBus({ capacity: 64 });
  const receiver = new Receiver();
  const deadLetters: BusRecord[] = [];
  let api: RunningApi;
  let auth: Record<string, string>;
  const ts = Date.now() - 5000;

  const start = () => listeningApi({ config, bus, store, apiStore }, "api-webhooks");
  const call = async (method: string, url: string, body?: object) => {
    const res = await fetch(`${api.url}${url}`, {
      method,
      headers: { ...auth, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, json: (await res.json().catch(() => undefined)) as Record<string, unknown> };
  };
  const subscribe = async (p: string, watchlists?: string[]) => {
    const res = await call("POST", "/v1/webhooks", {
      url: `${receiver.url}${p}`,
      watchlists,
      description: p,
    });
    expect(res.status).toBe(201);
    return res.json as { id: string; secret: string };
  };
  const deliveries = async (id: string, state?: string) =>
    (await call("GET", `/v1/webhooks/${id}/deliveries${state ? `?state=${state}` : ""}`)).json.items as {
      id: string;
      alertId: string;
      state: string;
      attempts: number;
      lastStatus: number | null;
      lastError: string | null;
    }[];

  beforeAll(async () => {
    await receiver.start();
    await bus.subscribe(Topics.dlq, { group: "dlq-watch" }, async (rs) => void deadLetters.push(...rs));
    api = await start();
    const { key } = await new KeyService(apiStore, apiStore).create(
      { name: "hooks", role: "admin" },
      cliActor(),
    );
    auth = { authorization: `Bearer ${key}` };
  });
  afterAll(async () => {
    await api?.stop();
    await bus.close();
    await receiver.stop();
    apiStore.close();
    store.close();
  });

  it("POSTs each alert of the subscribed watchlists, signed with HMAC-SHA256 over timestamp and body", async () => {
    const vip = await subscribe("/vip", ["vip"]);
    expect(vip.secret).toMatch(/^whsec_/);
    const listed = await call("GET", "/v1/webhooks");
    expect(JSON.stringify(listed.json)).not.toContain(vip.secret);
    await publishAlerts(bus, [
      alertMessage("w-1", "door", "ann", ts, "vip"),
      alertMessage("w-2", "door", "bo", ts + 1, "default"),
    ]);
    await until("the delivery", () => receiver.to("/vip").length === 1);
    await api.webhooks.idle();
    const [got] = receiver.to("/vip");
    expect(got!.headers["content-type"]).toBe("application/json");
    expect(got!.headers["x-vigil-event"]).toBe("alert");
    expect(got!.headers["x-vigil-delivery"]).toBe(`${vip.id}:w-1`);
    const signature = String(got!.headers["x-vigil-signature"]);
    expect(signature).toMatch(new RegExp(`^t=${got!.headers["x-vigil-timestamp"]},v1=[0-9a-f]{64}$`));
    expect(verifySignature(vip.secret, signature, got!.body)).toBe(true);
    expect(verifySignature(vip.secret, signature, got!.body.replace("ann", "eve"))).toBe(false);
    expect(verifySignature("whsec_wrong", signature, got!.body)).toBe(false);
    expect(verifySignature(vip.secret, signature, got!.body, Math.floor(Date.now() / 1000) + 3600)).toBe(
      false,
    );
    expect(JSON.parse(got!.body)).toMatchObject({
      type: "alert",
      alert: { id: "w-1", watchlistId: "vip", cropUrl: "/v1/alerts/w-1/crop" },
    });
    // w-2 is on another watchlist: not this webhook's.
    expect(receiver.to("/vip").map((r) => JSON.parse(r.body).alert.id)).toEqual(["w-1"]);
    expect(await deliveries(vip.id)).toEqual([
      expect.objectContaining({ alertId: "w-1", state: "delivered", attempts: 1, lastStatus: 200 }),
    ]);
    // The same alert again on the bus (at-least-once) is not delivered again.
    await publishAlerts(bus, [alertMessage("w-1", "door", "ann", ts, "vip")]);
    await bus.drain();
    await api.webhooks.idle();
    expect(receiver.to("/vip")).toHaveLength(1);
    await call("DELETE", `/v1/webhooks/${vip.id}`);
  });

  it("retries a 500 with growing, jittered delays and logs every attempt until it is delivered", async () => {
    receiver.scripts.set("/flaky", [500, 503, 200]);
    const hook = await subscribe("/flaky");
    await publishAlerts(bus, [alertMessage("w-3", "yard", "cy", ts + 3)]);
    await until("three attempts", () => receiver.to("/flaky").length === 3);
    await api.webhooks.idle();
    const times = receiver.to("/flaky").map((r) => r.at);
    // backoffMs 40 then 80, each between half and all of it.
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(18);
    expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(38);
    expect(await deliveries(hook.id)).toEqual([
      expect.objectContaining({
        alertId: "w-3",
        state: "delivered",
        attempts: 3,
        lastStatus: 200,
        lastError: null,
      }),
    ]);
    await call("DELETE", `/v1/webhooks/${hook.id}`);
  });

  it("dead-letters after the last attempt (delivery log and vigil.dlq), and can be retried by hand", async () => {
    receiver.scripts.set("/down", [500]);
    const hook = await subscribe("/down");
    await publishAlerts(bus, [alertMessage("w-4", "yard", "cy", ts + 4)]);
    await until("the dead letter", async () => (await deliveries(hook.id, "dead")).length === 1);
    expect(receiver.to("/down")).toHaveLength(3);
    const [dead] = await deliveries(hook.id, "dead");
    expect(dead).toMatchObject({
      alertId: "w-4",
      attempts: 3,
      lastStatus: 500,
      lastError: "receiver answered 500",
    });
    await until("vigil.dlq", () => deadLetters.length > 0);
    const letter = DeadLetterContract.decode(deadLetters.at(-1)!.value);
    expect(letter).toMatchObject({ sourceTopic: Topics.alerts, key: hook.id });
    expect(letter.reason).toContain("w-4");
    expect(JSON.parse(Buffer.from(letter.original).toString()).alert.id).toBe("w-4");
    // The receiver is fixed; an operator sends it again.
    receiver.scripts.set("/down", [200]);
    const retried = await call(
      "POST",
      `/v1/webhooks/${hook.id}/deliveries/${encodeURIComponent(dead!.id)}/retry`,
    );
    expect(retried.status).toBe(200);
    await until("the retried delivery", async () => (await deliveries(hook.id, "delivered")).length === 1);
    const audit = await apiStore.listAudit({ limit: 10, action: "webhook" });
    expect(audit.items.map((e) => e.action)).toEqual(
      expect.arrayContaining(["webhook.create", "webhook.retry"]),
    );
    await call("DELETE", `/v1/webhooks/${hook.id}`);
  });

  it("does not retry what retrying cannot fix (400), and refuses bad URLs", async () => {
    receiver.scripts.set("/refuses", [400]);
    const hook = await subscribe("/refuses");
    await publishAlerts(bus, [alertMessage("w-5", "yard", "cy", ts + 5)]);
    await until("the dead letter", async () => (await deliveries(hook.id, "dead")).length === 1);
    expect(receiver.to("/refuses")).toHaveLength(1);
    expect((await deliveries(hook.id))[0]!.lastError).toBe("receiver answered 400 (not retried)");
    expect((await call("POST", "/v1/webhooks", { url: "ftp://example.com/x" })).status).toBe(400);
    expect((await call("POST", "/v1/webhooks", { url: "not a url" })).status).toBe(400);
    await call("DELETE", `/v1/webhooks/${hook.id}`);
  });

  it("never holds up the bus consumer: a receiver that never answers leaves alerts flowing", async () => {
    receiver.scripts.set("/hangs", ["hang"]);
    const hook = await subscribe("/hangs");
    const started = Date.now();
    await publishAlerts(
      bus,
      Array.from({ length: 40 }, (_, i) => alertMessage(`w-hang-${i}`, "door", "ann", ts + 100 + i)),
    );
    await bus.drain();
    // 40 alerts stored and streamed while every delivery waits on a receiver that never answers.
    expect(Date.now() - started).toBeLessThan(1500);
    expect(await store.getAlert("w-hang-39")).toBeDefined();
    await until("timeouts", async () => (await deliveries(hook.id, "dead")).length === 40, 20_000);
    expect((await deliveries(hook.id, "dead"))[0]!.lastError).toBe("no answer within 300 ms");
    await call("DELETE", `/v1/webhooks/${hook.id}`);
  });

  it("names both faces: the one seen and the enrolled photo that matched, and their URLs serve them", async () => {
    const hook = await subscribe("/faces");
    // Two photos of ann (colours stand for faces); the camera sees a face close to the second.
    await enrolColours(store, "ann", { "ann-1.jpg": RED, "ann-2.jpg": BLUE });
    const [matched] = await matchAndPublish(bus, store, {
      cameraId: "porch",
      ts: Date.now(),
      vector: vec(0.1, 0.1, 1),
    });
    expect(matched!.matchedFaceId).toBe("ann:ann-2.jpg");
    // An alert from before the matched face was recorded shows the person's first photo with a crop.
    await publishAlerts(bus, [alertMessage("w-old", "porch", "ann", ts + 7)]);
    await until("both deliveries", () => receiver.to("/faces").length === 2);
    const sent = new Map(
      receiver.to("/faces").map((r) => {
        const { alert } = JSON.parse(r.body) as { alert: Record<string, string | null> };
        return [alert.id, alert];
      }),
    );
    const payload = sent.get(matched!.alertId)!;
    expect(payload).toMatchObject({
      matchedFaceId: "ann:ann-2.jpg",
      cropUrl: `/v1/alerts/${encodeURIComponent(matched!.alertId)}/crop`,
      personCropUrl: "/v1/people/ann/photos/ann-2.jpg/crop",
    });
    expect(sent.get("w-old")).toMatchObject({
      matchedFaceId: null,
      personCropUrl: "/v1/people/ann/photos/ann-1.jpg/crop",
    });
    const image = async (url: string) => {
      const res = await fetch(`${api.url}${url}`, { headers: auth });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("image/jpeg");
      return new Uint8Array(await res.arrayBuffer());
    };
    // The enrolled face served is the blue photo that matched; the face seen is the match stage's crop.
    const enrolled = await meanColour(await image(payload.personCropUrl!));
    expect(enrolled.b - enrolled.r).toBeGreaterThan(150);
    expect((await image(payload.cropUrl!)).byteLength).toBeGreaterThan(100);
    await call("DELETE", `/v1/webhooks/${hook.id}`);
  });

  it("resumes pending deliveries after a restart", async () => {
    receiver.scripts.set("/later", [503]);
    const hook = await subscribe("/later");
    await publishAlerts(bus, [alertMessage("w-6", "door", "ann", ts + 6)]);
    await until("a first failed attempt", () => receiver.to("/later").length >= 1);
    await api.stop();
    const pending = (await apiStore.listDeliveries(hook.id, { limit: 10 })).items[0]!;
    expect(pending.state).toBe("pending");
    receiver.scripts.set("/later", [200]);
    api = await start();
    await until(
      "the resumed delivery",
      async () => (await apiStore.getDelivery(pending.id))?.state === "delivered",
    );
    expect(receiver.to("/later").length).toBeLessThanOrEqual(3);
  });
});
