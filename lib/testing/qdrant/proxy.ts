import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { QdrantApi, QdrantOperation } from "./openapi.ts";

/**
 * A local HTTP endpoint speaking Qdrant's REST API, held to its OpenAPI document: the fake and the proxy. Both let
 * a test play a crash (`failNext`) or another client's write landing mid-operation (`beforeNext`).
 */
export abstract class QdrantEndpoint {
  private server: Server | undefined;
  url = "";
  /** `METHOD template` of every call made, in order. */
  readonly calls: string[] = [];
  /** Requests or replies the OpenAPI document does not allow, and calls to no endpoint of it. */
  readonly violations: string[] = [];
  private failures: string[] = [];
  private hooks: { call: string; run: () => Promise<void> }[] = [];

  /** The next call to `call` (e.g. `POST /collections/{collection_name}/points/delete`) fails with a 500. */
  failNext(call: string) {
    this.failures.push(call);
  }

  /** Runs `run` (which may use the server itself) just before the next `call` is executed. */
  beforeNext(call: string, run: () => Promise<void>) {
    this.hooks.push({ call, run });
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server!.address() as { port: number }).port}`;
    return this;
  }

  async stop() {
    // Keep-alive connections from clients would hold close() open.
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r));
  }

  protected abstract handle(req: IncomingMessage, res: ServerResponse): Promise<void>;

  /**
   * What both servers do first with a request: name its endpoint, play a fault asked for, and hold its body to the
   * document. Undefined when that already answered it (no such endpoint, an injected failure, a refused body).
   */
  protected async admit(
    api: QdrantApi,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<{ op: QdrantOperation; text: string; body: Record<string, unknown> } | undefined> {
    const url = new URL(req.url ?? "/", "http://x");
    const text = await readBody(req);
    const op = api.operation(req.method ?? "GET", url.pathname);
    if (!op) {
      this.violations.push(`${req.method} ${url.pathname}: not an endpoint of the Qdrant API`);
      return void send(res, 404, { status: { error: "unknown endpoint" } });
    }
    this.calls.push(op.call);
    const failure = this.failures.indexOf(op.call);
    if (failure >= 0) {
      this.failures.splice(failure, 1);
      return void send(res, 500, { status: { error: "injected failure" }, time: 0 });
    }
    const hook = this.hooks.findIndex((h) => h.call === op.call);
    if (hook >= 0) await this.hooks.splice(hook, 1)[0]!.run();
    let body: Record<string, unknown> = {};
    if (text) {
      try {
        body = JSON.parse(text) as Record<string, unknown>;
      } catch {
        this.violations.push(`${op.call}: body is not JSON`);
        return void send(res, 400, { status: { error: "bad json" } });
      }
    }
    const bad = api.requestViolation(op, body);
    if (bad) {
      this.violations.push(bad);
      return void send(res, 400, { status: { error: "request does not match the OpenAPI schema" } });
    }
    return { op, text, body };
  }
}

export const send = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
};

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * A checking proxy in front of a real Qdrant: every request Vigil sends and every 200 reply the server gives is
 * held to the official OpenAPI document (a violation is recorded, and a request the document refuses is answered
 * 400 without reaching the server, as the fake did), and a test can cut a call short or slip another client's
 * write in before it. The real server decides everything else: filters, ordering, conditional writes, refusals.
 */
export class QdrantProxy extends QdrantEndpoint {
  constructor(
    readonly target: string,
    private readonly api: QdrantApi,
  ) {
    super();
  }

  protected async handle(req: IncomingMessage, res: ServerResponse) {
    const admitted = await this.admit(this.api, req, res);
    if (!admitted) return;
    const { op, text } = admitted;
    try {
      const headers: Record<string, string> = { "content-type": "application/json" };
      const key = req.headers["api-key"];
      if (typeof key === "string") headers["api-key"] = key;
      const answer = await fetch(`${this.target}${req.url}`, {
        method: req.method,
        headers,
        ...(text ? { body: text } : {}),
      });
      const reply = await answer.text();
      if (answer.status === 200) {
        const bad = this.api.responseViolation(op, JSON.parse(reply));
        if (bad) this.violations.push(bad);
      }
      res.writeHead(answer.status, {
        "content-type": answer.headers.get("content-type") ?? "application/json",
      });
      res.end(reply);
    } catch (err) {
      // The server is away: as a client would see it, a connection that fails.
      res.destroy(err as Error);
    }
  }
}
