import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliActor, KeyService } from "../lib/api/keys.ts";
import { AlertContract, Topics } from "../lib/contracts/index.ts";
import { PostgresApiStore } from "../lib/store/postgres/api-store.ts";
import { openPool } from "../lib/store/postgres/pool.ts";
import { freePort } from "../lib/testing/process.ts";
import type { ServiceProcess } from "../lib/testing/service-process.ts";
import { alertMessage } from "./api-harness.ts";
import { until, useKafka } from "./kafka-helpers.ts";
import { usePostgres } from "./postgres-helpers.ts";

const kafka = useKafka();
const postgres = usePostgres("three API processes on one PostgreSQL");

/**
 * A webhook receiver that answers each request after `delayMs`, so attempts are in flight when a replica dies.
 * A request counts from its headers: one whose sender dies mid-request has still reached the receiver.
 */
class SlowReceiver {
  readonly requests: { key: string; attempt: number }[] = [];
  /** Idempotency keys of the requests not yet answered. */
  readonly inFlight = new Set<string>();
  private server: Server | undefined;
  url = "";

  constructor(private readonly delayMs: number) {}

  async start() {
    this.server = createServer((req, res) => {
      const key = String(req.headers["idempotency-key"]);
      this.requests.push({ key, attempt: Number(req.headers["x-vigil-attempt"]) });
      this.inFlight.add(key);
      req.resume();
      req.on("end", () =>
        setTimeout(() => {
          this.inFlight.delete(key);
          res.writeHead(200).end("ok");
        }, this.delayMs),
      );
      res.on("close", () => this.inFlight.delete(key));
    });
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", () => r()));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}/hook`;
  }

  keys() {
    return new Set(this.requests.map((r) => r.key));
  }

  async stop() {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => this.server?.close(() => r()));
  }
}

/** The alert stream of one API process: each event's id and alert id, read until the connection ends. */
async function openStream(base: string, auth: Record<string, string>, lastEventId?: string) {
  const events: { id: string; alertId: string }[] = [];
  const res = await fetch(`${base}/v1/alerts/stream`, {
    headers: { ...auth, ...(lastEventId ? { "last-event-id": lastEventId } : {}) },
  });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  let buffered = "";
  const done = (async () => {
    for (;;) {
      const { done: end, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
      if (end) return;
      buffered += new TextDecoder().decode(value);
      const blocks = buffered.split("\n\n");
      buffered = blocks.pop() ?? "";
      for (const block of blocks) {
        const id = /^id: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (id && data) events.push({ id, alertId: (JSON.parse(data) as { id: string }).id });
      }
    }
  })();
  return { events, done, cancel: () => reader.cancel().catch(() => undefined) };
}

describe.skipIf(postgres.skip !== undefined)(
  "`vigil serve api` processes on one PostgreSQL and Kafka, through a replica's death and the database's restart",
  () => {
    const receiver = new SlowReceiver(400);
    beforeAll(() => receiver.start());
    afterAll(() => receiver.stop());

    it("three replicas, one SIGKILLed while alerts flow: every alert reaches the webhook (repeats under one idempotency key), the stream resumes on another replica with nothing missed, the audit chain holds", async (ctx) => {
      if (!kafka.kafka()) return ctx.skip();
      const url = await postgres.database();
      const d = await kafka.deployment({
        api: {
          host: "127.0.0.1",
          sse: { heartbeatS: 1 },
          rateLimit: { burst: 100_000, perMinute: 1_000_000 },
          webhooks: { timeoutMs: 2000, backoffMs: 100, maxBackoffMs: 400, leaseMs: 1500, pollMs: 200 },
        },
      });
      // The alerts themselves go to the deployment's shared store file; the API's records to PostgreSQL.
      const file = (d.config.store as { path: string }).path;
      const configFile = d.configFor("api", {
        store: { path: file, records: { kind: "postgres", url } },
      });
      const records = await PostgresApiStore.open(url);
      const sql = await openPool(url);
      let apis: ServiceProcess[] = [];
      try {
        const { key } = await new KeyService(records, records).create(
          { name: "ops", role: "admin" },
          cliActor(),
        );
        const auth = { authorization: `Bearer ${key}` };
        const ports = [await freePort(), await freePort(), await freePort()];
        // Each replica reads every alert in a consumer group of its own, as the Deployment names them by pod.
        apis = ports.map((port, i) =>
          d.start("api", { VIGIL_API__PORT: String(port), VIGIL_SERVICE__GROUP: `api-${i}` }, configFile),
        );
        await Promise.all(apis.map((a) => a.ready(90_000)));
        const base = ports.map((p) => `http://127.0.0.1:${p}`);

        const created = await fetch(`${base[1]}/v1/webhooks`, {
          method: "POST",
          headers: { ...auth, "content-type": "application/json" },
          body: JSON.stringify({ url: receiver.url }),
        });
        expect(created.status).toBe(201);
        const hook = (await created.json()) as { id: string };

        const first = await openStream(base[0]!, auth);
        const N = 60;
        const ids = Array.from({ length: N }, (_, i) => `rep-${String(i).padStart(2, "0")}`);
        // Audited writes on all three replicas at once while alerts flow: one chain in the database.
        const audited = Promise.all(
          base.flatMap((b, r) =>
            Array.from({ length: 8 }, (_, i) =>
              fetch(`${b}/v1/keys`, {
                method: "POST",
                headers: { ...auth, "content-type": "application/json" },
                body: JSON.stringify({ name: `k-${r}-${i}`, role: "viewer" }),
              }).then(
                (res) => res.status,
                () => 0,
              ),
            ),
          ),
        );
        // Alerts flow at about 12 a second for the whole run, from three cameras.
        const published = (async () => {
          for (const [i, id] of ids.entries()) {
            const msg = alertMessage(id, `cam-${i % 3}`, "ann", Date.now());
            await d.bus.publish(Topics.alerts, [{ key: "default", value: AlertContract.encode(msg) }]);
            await new Promise((r) => setTimeout(r, 80));
          }
        })();
        await until("the first alerts on replica 0's stream", () => first.events.length >= 5, 30_000);
        // Kill replica 0 while the receiver holds requests it sent: claimed by it in the database, not answered.
        const pid = apis[0]!.child.pid!;
        let held: string[] = [];
        await until(
          "replica 0 with attempts in flight",
          async () => {
            const claims = await sql.query<{ id: string }>(
              "SELECT id FROM webhook_deliveries WHERE state = 'pending' AND claimed_by LIKE $1",
              [`%/${pid}/%`],
            );
            held = claims.rows.map((r) => r.id).filter((id) => receiver.inFlight.has(id));
            return held.length > 0;
          },
          30_000,
        );
        await apis[0]!.kill("SIGKILL");
        await first.done;
        const lastSeen = first.events.at(-1)!.id;
        // The client reconnects to another replica, resuming from the last event it saw.
        const second = await openStream(base[1]!, auth, lastSeen);
        await published;
        expect((await audited).filter((s) => s !== 201).length).toBeLessThanOrEqual(8); // replica 0's may die
        await until("every alert at the receiver", () => receiver.keys().size === N, 60_000);
        await until(
          "every alert on the resumed stream",
          () => new Set([...first.events, ...second.events].map((e) => e.alertId)).size === N,
          30_000,
        );
        void second.cancel();

        // Webhooks: every alert delivered at least once, each under its one key; what the dead replica held was
        // attempted again by another once its lease lapsed, under the same key.
        const keys = ids.map((id) => `${hook.id}:${id}`);
        expect([...receiver.keys()].sort()).toEqual(keys);
        for (const k of held) {
          const attempts = receiver.requests.filter((r) => r.key === k).map((r) => r.attempt);
          expect(attempts.length).toBeGreaterThanOrEqual(2);
          expect(Math.max(...attempts)).toBeGreaterThan(Math.min(...attempts));
        }
        console.log(
          `webhook: ${receiver.requests.length} requests for ${N} alerts; ${held.length} held by the killed replica, attempted again`,
        );
        await until(
          "every delivery settled",
          async () =>
            (await records.listDeliveries(hook.id, { limit: 100, state: "delivered" })).items.length === N,
          30_000,
        );
        // The stream: nothing missed across the reconnect (a repeat or two from the resume slack is allowed).
        const seen = [...first.events, ...second.events].map((e) => e.alertId);
        expect(new Set(seen).size).toBe(N);
        // The audit log: one unbroken chain, whichever replica wrote each entry.
        const verified = await records.verifyAudit();
        expect(verified.ok).toBe(true);
        expect(verified.entries).toBeGreaterThanOrEqual(1 + 16);
      } finally {
        await Promise.all(apis.map((a) => a.kill("SIGKILL")));
        await records.close();
        await sql.end();
      }
    }, 240_000);

    it("PostgreSQL restarted under the API: not ready while it is away, then every alert of the outage delivered", async (ctx) => {
      if (!kafka.kafka()) return ctx.skip();
      const url = await postgres.database();
      const d = await kafka.deployment({
        api: {
          host: "127.0.0.1",
          rateLimit: { burst: 100_000, perMinute: 1_000_000 },
          webhooks: { timeoutMs: 2000, backoffMs: 100, maxBackoffMs: 400, leaseMs: 1500, pollMs: 200 },
        },
      });
      const file = (d.config.store as { path: string }).path;
      const configFile = d.configFor("api", { store: { path: file, records: { kind: "postgres", url } } });
      const records = await PostgresApiStore.open(url);
      let api: ServiceProcess | undefined;
      try {
        const { key } = await new KeyService(records, records).create(
          { name: "ops", role: "admin" },
          cliActor(),
        );
        const port = await freePort();
        api = d.start("api", { VIGIL_API__PORT: String(port), VIGIL_SERVICE__GROUP: "api-0" }, configFile);
        await api.ready(90_000);
        const base = `http://127.0.0.1:${port}`;
        const created = await fetch(`${base}/v1/webhooks`, {
          method: "POST",
          headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
          body: JSON.stringify({ url: receiver.url }),
        });
        expect(created.status).toBe(201);
        const hook = (await created.json()) as { id: string };
        const before = receiver.requests.length;
        const keysOf = (ids: string[]) => ids.map((id) => `${hook.id}:${id}`);
        const publish = async (ids: string[]) => {
          for (const [i, id] of ids.entries())
            await d.bus.publish(Topics.alerts, [
              {
                key: "default",
                value: AlertContract.encode(alertMessage(id, `cam-${i % 2}`, "ann", Date.now())),
              },
            ]);
        };
        const received = () => new Set(receiver.requests.slice(before).map((r) => r.key));
        const readiness = async () => {
          const res = await fetch(`${base}/readyz`);
          return { status: res.status, body: (await res.json()) as { checks: Record<string, boolean> } };
        };

        const first = Array.from({ length: 8 }, (_, i) => `pg-a${i}`);
        await publish(first);
        await until(
          "the first alerts delivered",
          () => keysOf(first).every((k) => received().has(k)),
          30_000,
        );

        // The database goes away: the API says it is not ready (the stage's own port too), and keeps running.
        await postgres.server().stop();
        await until("not ready", async () => (await readiness()).status === 503, 15_000);
        expect((await readiness()).body.checks).toMatchObject({ records: false, bus: true });
        const during = Array.from({ length: 8 }, (_, i) => `pg-b${i}`);
        await publish(during);
        // Time for the API to read them and fail to queue them: the batch is held, not committed.
        await new Promise((r) => setTimeout(r, 2000));
        expect(api.child.exitCode).toBeNull();

        await postgres.server().start();
        await until("ready again", async () => (await readiness()).status === 200, 30_000);
        const after = Array.from({ length: 4 }, (_, i) => `pg-c${i}`);
        await publish(after);
        const all = keysOf([...first, ...during, ...after]);
        await until(
          "every alert delivered, the outage's too",
          () => all.every((k) => received().has(k)),
          60_000,
        );
        const log = await records.listDeliveries(hook.id, { limit: 100 });
        expect(log.items.map((x) => x.alertId).sort()).toEqual([...first, ...during, ...after].sort());
        await until(
          "every delivery settled",
          async () =>
            (await records.listDeliveries(hook.id, { limit: 100, state: "delivered" })).items.length ===
            all.length,
          30_000,
        );
      } finally {
        await api?.kill("SIGKILL");
        await records.close();
      }
    }, 240_000);
  },
);
