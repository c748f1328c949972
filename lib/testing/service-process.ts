import { checkoutRoot } from "../util/checkout.ts";
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";

export interface ServiceProcessOptions {
  /** JSON config file every service of the test shares. */
  configFile: string;
  env?: Record<string, string>;
}

/**
 * One Vigil stage as a real OS process (`vigil serve <stage>`), as the scale-out tests and `bench pipeline`
 * run them: its health port is read from its log, and it can be killed with any signal.
 */
export class ServiceProcess {
  readonly child: ChildProcess;
  readonly log: string[] = [];
  readonly port: Promise<number>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    readonly stage: string,
    options: ServiceProcessOptions,
  ) {
    this.child = spawn(
      process.execPath,
      [path.join(checkoutRoot(), "bin", "vigil.js"), "--config", options.configFile, "serve", stage],
      {
        stdio: ["ignore", "pipe", "pipe"],
        env: {
          ...process.env,
          VIGIL_SERVICE__HOST: "127.0.0.1",
          VIGIL_SERVICE__PORT: "0",
          VIGIL_LOG_LEVEL: "info",
          ...options.env,
        },
      },
    );
    this.exited = new Promise((resolve) =>
      this.child.once("exit", (code, signal) => resolve({ code, signal })),
    );
    this.port = new Promise((resolve, reject) => {
      let buffered = "";
      const onData = (chunk: Buffer) => {
        buffered += chunk.toString();
        const lines = buffered.split("\n");
        buffered = lines.pop() ?? "";
        for (const line of lines) {
          this.log.push(line);
          const m = /"port":(\d+)/.exec(line);
          if (m && line.includes("listening")) resolve(Number(m[1]));
        }
      };
      this.child.stderr!.on("data", onData);
      this.child.stdout!.on("data", (c: Buffer) => this.log.push(c.toString()));
      void this.exited.then(({ code, signal }) =>
        reject(
          new Error(
            `${stage} exited (${code ?? signal}) before listening:\n${this.log.slice(-20).join("\n")}`,
          ),
        ),
      );
    });
  }

  /** Resolves once /readyz says ready (models loaded, broker and store reachable). */
  async ready(timeoutMs = 60_000): Promise<void> {
    const port = await this.port;
    const deadline = Date.now() + timeoutMs;
    let last = "";
    while (Date.now() < deadline) {
      if (this.child.exitCode !== null)
        throw new Error(`${this.stage} exited:\n${this.log.slice(-20).join("\n")}`);
      try {
        const res = await fetch(`http://127.0.0.1:${port}/readyz`);
        last = await res.text();
        if (res.status === 200) return;
      } catch (err) {
        last = (err as Error).message;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`${this.stage} not ready after ${timeoutMs} ms (${last})`);
  }

  async metrics(): Promise<string> {
    return (await fetch(`http://127.0.0.1:${await this.port}/metrics`)).text();
  }

  /** Sends a signal and waits for the process to end. */
  async kill(signal: NodeJS.Signals = "SIGTERM") {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}
