import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, guardServerProcess } from "../process.ts";

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), "rtsp_server.py");

export type MountSpec =
  | {
      kind: "test";
      width?: number;
      height?: number;
      fps?: number;
      pattern?: string;
      /** H.264 (default), or Motion JPEG as older IP cameras send. */
      codec?: "h264" | "jpeg";
    }
  | { kind: "file"; path: string };

/** GStreamer's RTSP server (Debian packages, system python3 with gi) serving test mounts on 127.0.0.1. */
export class RtspTestServer {
  private proc: ChildProcess | undefined;

  private constructor(
    readonly port: number,
    private readonly mounts: Record<string, MountSpec>,
    private readonly credentials?: string,
  ) {}

  static async start(mounts: Record<string, MountSpec>, credentials?: string): Promise<RtspTestServer> {
    const server = new RtspTestServer(await freePort(), mounts, credentials);
    await server.launch();
    return server;
  }

  url(mount: string, auth?: string): string {
    return `rtsp://${auth ? `${auth}@` : ""}127.0.0.1:${this.port}${mount}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  async launch(): Promise<void> {
    const args = [
      SCRIPT,
      String(this.port),
      JSON.stringify(this.mounts),
      ...(this.credentials ? [this.credentials] : []),
    ];
    const proc = spawn("/usr/bin/python3", args, { stdio: ["ignore", "pipe", "pipe"] });
    // A bench stopped by Ctrl-C or SIGTERM runs no cleanup; without the guard the server outlived it.
    guardServerProcess(proc, "rtsp_server.py");
    this.proc = proc;
    let output = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`RTSP server did not start: ${output}`)), 15_000);
      const onData = (d: Buffer) => {
        output += d.toString();
        if (output.includes("READY")) {
          clearTimeout(timer);
          resolve();
        }
      };
      proc.stdout!.on("data", onData);
      proc.stderr!.on("data", (d: Buffer) => (output += d.toString()));
      proc.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`RTSP server exited with ${code}: ${output}`));
      });
    });
  }

  /** Kills the server outright, as a crashed camera would vanish. */
  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill("SIGCONT");
    proc.kill("SIGKILL");
    await new Promise((r) => proc.once("exit", r));
  }

  /** Freezes the server: connections stay open, nothing is sent. */
  pause() {
    this.proc?.kill("SIGSTOP");
  }

  resume() {
    this.proc?.kill("SIGCONT");
  }
}
