import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { AlertRecord } from "../lib/store/alert-store.ts";
import { PostgresApiStore } from "../lib/store/postgres/api-store.ts";
import type { WebhookDelivery } from "../lib/store/webhook-store.ts";
import { until } from "../lib/testing/process.ts";
import { WebhookDispatcher, type WebhookOptions } from "../services/api/webhooks.ts";
import { usePostgres } from "./postgres-helpers.ts";

const T0 = Date.UTC(2026, 0, 1);
const postgres = usePostgres("webhook deliveries claimed by two replicas");

const delivery = (alertId: string, createdTs: number): WebhookDelivery => ({
  id: `w1:${alertId}`,
  webhookId: "w1",
  alertId,
  state: "pending",
  attempts: 0,
  lastStatus: null,
  lastError: null,
  createdTs,
  updatedTs: createdTs,
  nextAttemptTs: createdTs,
  payload: JSON.stringify({ alertId }),
});

const alert = (id: string, ts: number): AlertRecord => ({
  id,
  watchlistId: "default",
  personId: "p1",
  personName: "ann",
  cameraId: "door",
  ts,
  score: 0.9,
  threshold: 0.5,
  modelId: "m",
  faceId: `f-${id}`,
  box: { x: 0, y: 0, width: 10, height: 10 },
  matchedFaceId: null,
  acknowledged: null,
});

/** Two API replicas' stores: one database, two pools, as two processes would have. */
describe.skipIf(postgres.skip !== undefined)("webhook deliveries with two replicas on one PostgreSQL", () => {
  const stores: PostgresApiStore[] = [];
  const open = async (url: string) => {
    const s = await PostgresApiStore.open(url);
    stores.push(s);
    return s;
  };
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
  });

  it("claims each delivery once among racing claimants, and after one dies the other takes over what it held", async () => {
    const url = await postgres.database();
    const [a, b] = [await open(url), await open(url)];
    await a.addWebhook({
      id: "w1",
      url: "http://127.0.0.1:9/",
      secret: "s",
      watchlists: null,
      description: "",
      createdTs: T0,
    });
    const N = 300;
    for (let i = 0; i < N; i++)
      await (i % 2 ? a : b).addDelivery(delivery(`a${String(i).padStart(3, "0")}`, T0 + i));

    // Twenty claims at once, ten through each pool, more asked for than there are: SKIP LOCKED hands each
    // delivery to one of them.
    const now = T0 + N;
    const lease = 1000;
    const rounds = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? a : b).claimDeliveries(i % 2 ? "A" : "B", now, lease, 25),
      ),
    );
    const byA = rounds.filter((_, i) => i % 2).flat();
    const byB = rounds.filter((_, i) => !(i % 2)).flat();
    const claimed = [...byA, ...byB].map((d) => d.id);
    expect(new Set(claimed).size).toBe(claimed.length);
    expect(claimed.length).toBeGreaterThan(0);
    expect([...byA, ...byB].every((d) => d.attempts === 1)).toBe(true);

    // B works through the rest while both leases hold: never one of A's.
    const heldByA = new Set(byA.map((d) => d.id));
    const doneByB = new Set(byB.map((d) => d.id));
    for (;;) {
      const more = await b.claimDeliveries("B", now + 10, lease, 50);
      if (more.length === 0) break;
      for (const d of more) {
        expect(heldByA.has(d.id)).toBe(false);
        doneByB.add(d.id);
      }
    }
    expect(await a.claimDeliveries("A", now + 10, lease, 50)).toEqual([]);
    for (const id of doneByB)
      expect(
        await b.settleDelivery(id, "B", {
          state: "delivered",
          lastStatus: 200,
          lastError: null,
          nextAttemptTs: null,
          updatedTs: now + 20,
        }),
      ).toBe(true);
    expect(heldByA.size + doneByB.size).toBe(N);

    // A dies: it stops renewing. While its lease holds, its deliveries stay its own; once it lapses, B's.
    expect(await b.claimDeliveries("B", now + lease - 1, lease, N)).toEqual([]);
    const takenOver = await b.claimDeliveries("B", now + lease, lease, N);
    expect(new Set(takenOver.map((d) => d.id))).toEqual(heldByA);
    expect(takenOver.every((d) => d.attempts === 2)).toBe(true);
    for (const d of takenOver)
      await b.settleDelivery(d.id, "B", {
        state: "delivered",
        lastStatus: 200,
        lastError: null,
        nextAttemptTs: null,
        updatedTs: now + lease,
      });
    // Nothing lost, nothing left.
    expect(await a.countPending()).toBe(0);
    const log = await a.listDeliveries("w1", { limit: 500 });
    expect(log.items).toHaveLength(N);
    expect(log.items.every((d) => d.state === "delivered")).toBe(true);
  });

  describe("two dispatchers, one frozen mid-attempt", () => {
    let server: Server;
    let receiverUrl = "";
    const received: { headers: IncomingHttpHeaders; body: string }[] = [];
    beforeAll(async () => {
      server = createServer((req, res) => {
        let body = "";
        req.on("data", (c: Buffer) => (body += c.toString()));
        req.on("end", () => {
          received.push({ headers: req.headers, body });
          res.writeHead(200).end("ok");
        });
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
      receiverUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`;
    });
    afterAll(async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    });

    it("delivers every alert: the survivor takes the frozen replica's deliveries once their leases lapse, same idempotency key", async () => {
      const url = await postgres.database();
      const [storeA, storeB] = [await open(url), await open(url)];
      const options: WebhookOptions = {
        timeoutMs: 300,
        maxAttempts: 5,
        backoffMs: 50,
        maxBackoffMs: 200,
        maxQueue: 1000,
        concurrency: 4,
        leaseMs: 600,
        pollMs: 100,
      };
      // Replica A freezes as it sends (a process stopped, or one that lost its network): no request leaves, none
      // ends, and its leases are no longer renewed.
      const thaw = new AbortController();
      const frozen = new Proxy(storeA, {
        get(target, prop, receiver) {
          if (prop === "renewClaims") return async () => Promise.reject(new Error("frozen"));
          const v = Reflect.get(target, prop, receiver) as unknown;
          return typeof v === "function" ? v.bind(target) : v;
        },
      });
      const replicaA = new WebhookDispatcher(frozen, options, {
        claimant: "A",
        fetch: () =>
          new Promise<Response>((_, reject) =>
            thaw.signal.addEventListener("abort", () => reject(new Error("thawed"))),
          ),
      });
      const replicaB = new WebhookDispatcher(storeB, options, { claimant: "B" });
      try {
        await replicaA.start();
        await replicaB.start();
        const hook = await replicaB.create({ url: receiverUrl });
        const N = 30;
        const ids = Array.from({ length: N }, (_, i) => `al-${i}`);
        // Every replica sees every alert (each has a consumer group of its own).
        for (const [i, id] of ids.entries()) {
          replicaA.offer(alert(id, T0 + i));
          replicaB.offer(alert(id, T0 + i));
        }
        await until(
          "every delivery delivered",
          async () => {
            const page = await storeB.listDeliveries(hook.id, { limit: 100, state: "delivered" });
            return page.items.length === N;
          },
          20_000,
        );
        // A did claim some (and never finished them): they were taken over, as second attempts.
        const claimedByA = received.filter((r) => r.headers["x-vigil-attempt"] === "2");
        expect(claimedByA.length).toBeGreaterThan(0);
        expect(claimedByA.length).toBeLessThanOrEqual(4);
        // Every alert arrived, once (A's requests never left), each with its delivery id as idempotency key.
        const got = received.map((r) => (JSON.parse(r.body) as { alert: { id: string } }).alert.id);
        expect(got.sort()).toEqual([...ids].sort());
        for (const r of received) {
          const alertId = (JSON.parse(r.body) as { alert: { id: string } }).alert.id;
          expect(r.headers["idempotency-key"]).toBe(`${hook.id}:${alertId}`);
          expect(r.headers["x-vigil-delivery"]).toBe(`${hook.id}:${alertId}`);
        }
        expect(replicaB.stats.delivered).toBe(N);
        expect(await storeB.countPending()).toBe(0);
      } finally {
        thaw.abort();
        await replicaB.stop();
        await replicaA.stop();
      }
      // A's late outcome recorded nothing over B's: still delivered.
      expect(await storeA.countPending()).toBe(0);
    });
  });
});
