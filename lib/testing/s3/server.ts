import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { checkoutRoot } from "../../util/checkout.ts";
import { freePort, guardServerProcess, portOpen, startOrDestroy } from "../process.ts";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";

/** Where scripts/setup.sh installs s3s-fs (`cargo install --root .vigil/s3s`); VIGIL_S3S_FS names another binary. */
export const S3S_FS = process.env.VIGIL_S3S_FS ?? path.join(checkoutRoot(), ".vigil/s3s/bin/s3s-fs");

/** Why a local S3-compatible server cannot be run here, or undefined when it can. */
export function s3UnavailableReason(binary = S3S_FS): string | undefined {
  if (!existsSync(binary))
    return `${binary} is not installed (VIGIL_SETUP_TEST_DEPS=1 bash scripts/setup.sh, or cargo install s3s-fs@0.14.1 --features binary --locked --root .vigil/s3s)`;
  const probe = spawnSync(binary, ["--help"], { stdio: "ignore", timeout: 10_000 });
  if (probe.error || probe.status !== 0)
    return `${binary} does not run: ${probe.error?.message ?? probe.status}`;
  return undefined;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface S3ServerOptions {
  binary?: string;
  /** Kept across stop/start; a fresh temporary directory (removed by destroy) when not given. */
  dataDir?: string;
  port?: number;
  accessKey?: string;
  secretKey?: string;
  startTimeoutMs?: number;
}

/**
 * s3s-fs, a real S3 server (SigV4 authentication, the S3 REST protocol) over a local folder, on 127.0.0.1: each
 * bucket is a sub-folder of `dataDir`. Stop and start keep the port and the objects, as a restarted server would.
 */
export class S3Server {
  private proc: ChildProcess | undefined;
  private watchdog: ChildProcess | undefined;
  private readonly ownsDataDir: boolean;
  readonly dataDir: string;
  readonly accessKey: string;
  readonly secretKey: string;
  /** How long the last start took until the port answered. */
  startMs = 0;

  private constructor(
    private readonly binary: string,
    readonly port: number,
    dataDir: string | undefined,
    accessKey: string | undefined,
    secretKey: string | undefined,
    private readonly startTimeoutMs: number,
  ) {
    this.ownsDataDir = dataDir === undefined;
    this.dataDir = dataDir ?? mkdtempSync(path.join(tmpdir(), "vigil-s3-"));
    this.accessKey = accessKey ?? `vigil${randomBytes(4).toString("hex")}`;
    this.secretKey = secretKey ?? randomBytes(20).toString("base64url");
  }

  static async start(options: S3ServerOptions = {}): Promise<S3Server> {
    const binary = options.binary ?? S3S_FS;
    const reason = s3UnavailableReason(binary);
    if (reason) throw new Error(`cannot run an S3 server: ${reason}`);
    const server = new S3Server(
      binary,
      options.port ?? (await freePort()),
      options.dataDir,
      options.accessKey,
      options.secretKey,
      options.startTimeoutMs ?? 20_000,
    );
    return startOrDestroy(server);
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  private get logFile() {
    // Beside the buckets, not in them: s3s-fs lists every sub-folder of its root as a bucket.
    return `${this.dataDir}.log`;
  }

  async start(): Promise<void> {
    if (this.running) return;
    const started = Date.now();
    const out = openSync(this.logFile, "a");
    const proc = spawn(
      this.binary,
      [
        "--host",
        "127.0.0.1",
        "--port",
        String(this.port),
        // `--opt=value`: a random secret may begin with "-", which the parser would otherwise read as an option.
        `--access-key=${this.accessKey}`,
        `--secret-key=${this.secretKey}`,
        "--",
        this.dataDir,
      ],
      { stdio: ["ignore", out, out] },
    );
    closeSync(out);
    this.proc = proc;
    this.watchdog = guardServerProcess(proc, "s3s-fs");
    const deadline = started + this.startTimeoutMs;
    while (!(await portOpen(this.port))) {
      if (!this.running) {
        const tail = existsSync(this.logFile) ? readFileSync(this.logFile, "utf8").slice(-2000) : "";
        throw new Error(`s3s-fs exited during start (code ${proc.exitCode}): ${tail}`);
      }
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`s3s-fs did not open port ${this.port} within ${this.startTimeoutMs} ms`);
      }
      await sleep(50);
    }
    this.startMs = Date.now() - started;
  }

  /** SIGTERM, then SIGKILL if it lingers; the objects are kept. */
  async stop(graceMs = 5_000): Promise<void> {
    const proc = this.proc;
    this.watchdog?.kill("SIGKILL");
    this.watchdog = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once("exit", () => r()));
    // A frozen (SIGSTOPped) server would not act on SIGTERM.
    proc.kill("SIGCONT");
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** Freezes the server (SIGSTOP): connections open, nothing answered, as a hung machine. */
  freeze() {
    this.proc?.kill("SIGSTOP");
  }

  thaw() {
    this.proc?.kill("SIGCONT");
  }

  async destroy(): Promise<void> {
    await this.stop();
    if (this.ownsDataDir) rmSync(this.dataDir, { recursive: true, force: true });
    rmSync(this.logFile, { force: true });
  }

  /** An SDK client for this server with its credentials (or others, to test a refusal). */
  client(credentials = { accessKeyId: this.accessKey, secretAccessKey: this.secretKey }): S3Client {
    // As in S3CropStore: the SDK's Node 22 notice would clutter the test output.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
    return new S3Client({
      endpoint: this.endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials,
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
    });
  }

  /** Creates a bucket with a name no other test has used, and returns the name. */
  async createBucket(prefix = "vigil-test"): Promise<string> {
    const name = `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
    const client = this.client();
    try {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    } finally {
      client.destroy();
    }
    return name;
  }
}
