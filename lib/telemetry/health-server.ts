import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Metrics } from "./metrics.ts";

export type ReadinessCheck = () => boolean | Promise<boolean>;

/**
 * /healthz (alive: the event loop answers), /readyz (every named check passes: models loaded, broker and store
 * reachable) and /metrics (Prometheus text). Kubernetes probes and Prometheus scrape these.
 */
export class HealthServer {
  private readonly checks = new Map<string, ReadinessCheck>();
  private server: Server | undefined;

  constructor(private readonly metrics: Metrics) {}

  addReadiness(name: string, check: ReadinessCheck): void {
    this.checks.set(name, check);
  }

  async readiness(): Promise<Record<string, boolean>> {
    const out: Record<string, boolean> = {};
    for (const [name, check] of this.checks) {
      try {
        out[name] = await check();
      } catch {
        out[name] = false;
      }
    }
    return out;
  }

  async listen(host: string, port: number): Promise<AddressInfo> {
    this.server = createServer((req, res) => {
      void (async () => {
        const url = (req.url ?? "/").split("?")[0];
        if (req.method !== "GET") {
          res.writeHead(405, { allow: "GET" }).end();
        } else if (url === "/healthz") {
          res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
        } else if (url === "/readyz") {
          const checks = await this.readiness();
          const ready = this.checks.size > 0 && Object.values(checks).every(Boolean);
          res.writeHead(ready ? 200 : 503, { "content-type": "application/json" });
          res.end(`${JSON.stringify({ ready, checks })}\n`);
        } else if (url === "/metrics") {
          const body = await this.metrics.text();
          res.writeHead(200, { "content-type": this.metrics.contentType }).end(body);
        } else {
          res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
        }
      })().catch((err: Error) => {
        if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
        res.end(`${err.message}\n`);
      });
    });
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => resolve());
    });
    return server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
