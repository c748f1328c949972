import { createServer, type Server } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { isTransient, TransientError } from "../runtime/errors.ts";
import { freePort } from "../testing/process.ts";
import { QdrantNodes, retriable } from "./qdrant-nodes.ts";

/**
 * The store's client over several Qdrant nodes, against real sockets: a port nobody listens on (a killed node)
 * and a small HTTP server answering as a node would (`GET /` with a version, or a 500, or a 400).
 */
const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

/** A node that answers `GET /` with `status` (200: a version) and counts what it was asked. */
async function node(status: number) {
  const asked = { n: 0 };
  const server = createServer((_req, res) => {
    asked.n++;
    res.writeHead(status, { "content-type": "application/json" });
    res.end(
      JSON.stringify(
        status === 200 ? { title: "qdrant", version: "1.18.3" } : { status: { error: `answer ${status}` } },
      ),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, asked };
}

describe("QdrantNodes", () => {
  it("moves on from a node that refuses connections, says so once, and stays on the one that answered", async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const live = await node(200);
    const warnings: string[] = [];
    const nodes = new QdrantNodes([dead, live.url], undefined, undefined, (m) => warnings.push(m));
    expect((await nodes.client.versionInfo()).version).toBe("1.18.3");
    expect(nodes.url).toBe(live.url);
    expect((await nodes.client.versionInfo()).version).toBe("1.18.3");
    expect(nodes.stats).toEqual({ calls: 2, retried: 1, failovers: 1, failed: 0 });
    expect(warnings).toEqual([
      expect.stringMatching(new RegExp(`^vigil: Qdrant at ${dead} failed .*; using ${live.url}`)),
    ]);
    expect(live.asked.n).toBe(2);
  });

  it("a server-side failure (5xx) is asked of the next node; a refused request (4xx) is not asked again", async () => {
    const failing = await node(500);
    const live = await node(200);
    const nodes = new QdrantNodes([failing.url, live.url], undefined);
    expect((await nodes.client.versionInfo()).version).toBe("1.18.3");
    expect(failing.asked.n).toBe(1);

    const refusing = await node(400);
    const strict = new QdrantNodes([refusing.url, live.url], undefined);
    await expect(strict.client.versionInfo()).rejects.toMatchObject({ status: 400 });
    expect(refusing.asked.n).toBe(1);
    expect(strict.stats.retried).toBe(0);
  });

  it("keeps trying for retryMs, then fails transiently (the stage redelivers, nothing is dead-lettered)", async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const nodes = new QdrantNodes([dead], undefined, { retryMs: 400, timeoutMs: 1000 });
    const started = Date.now();
    const err = await nodes.client.versionInfo().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TransientError);
    expect(isTransient(err)).toBe(true);
    expect((err as Error).message).toMatch(/did not answer within 400 ms/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    // One URL is retried too (a restart of a single server), pausing between rounds rather than spinning.
    expect(nodes.stats.retried).toBeGreaterThanOrEqual(1);
    expect(nodes.stats.retried).toBeLessThan(20);
    expect(nodes.stats).toMatchObject({ failovers: 0, failed: 1 });
  });

  it("tells the server's failures from the request's", () => {
    expect(retriable({ status: 503 })).toBe(true);
    expect(retriable({ status: 429 })).toBe(true);
    expect(retriable({ status: 404 })).toBe(false);
    expect(retriable(Object.assign(new TypeError("fetch failed"), { cause: { code: "ECONNREFUSED" } }))).toBe(
      true,
    );
    expect(retriable(new Error("Bad request: wrong input"))).toBe(false);
  });
});
