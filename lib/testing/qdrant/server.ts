import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import {
  closeSync,
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { checkoutRoot } from "../../util/checkout.ts";
import { freePort, guardServerProcess, startOrDestroy } from "../process.ts";

/**
 * The Qdrant release the tests run, as `../shared/qdrant` ships it (xz-compressed); `VIGIL_QDRANT_BINARY` names
 * another: an `.xz` file, unpacked like this one, or a server binary used as it is.
 */
export const QDRANT_BINARY =
  process.env.VIGIL_QDRANT_BINARY ??
  path.resolve(checkoutRoot(), "../shared/qdrant/qdrant-1.18.3-linux-x86_64.xz");
/**
 * sha256 of the binary unpacked from the default `.xz` (../shared/qdrant/README.md). A binary unpacked from any
 * `.xz` must match it (or `VIGIL_QDRANT_SHA256`), so a truncated copy or a swapped file fails here, by name,
 * rather than as a server that will not start.
 */
export const QDRANT_SHA256 =
  process.env.VIGIL_QDRANT_SHA256 ?? "3fb195489f0e46a322b93d9b80bb55f0f15cf0adf9984315e562637ab35da86b";
/** Where an `.xz` is unpacked, once: `.vigil/` is ignored by git and kept between runs. */
export const QDRANT_DIR = path.join(checkoutRoot(), ".vigil/qdrant");

/** Why a local Qdrant cannot be run here, or undefined when it can (the `.xz` is unpacked on first start). */
export function qdrantUnavailableReason(source = QDRANT_BINARY): string | undefined {
  if (!existsSync(source))
    return `${source} is not there (a checkout without ../shared; VIGIL_QDRANT_BINARY names another, QDRANT_URL an outside server)`;
  if (source.endsWith(".xz")) {
    const xz = spawnSync("xz", ["--version"], { stdio: "ignore" });
    if (xz.error || xz.status !== 0) return "xz is not installed (apt-get install xz-utils)";
  }
  return undefined;
}

const sha256 = (file: string) =>
  new Promise<string>((resolve, reject) => {
    const hash = createHash("sha256");
    createReadStream(file)
      .on("data", (chunk) => hash.update(chunk))
      .on("end", () => resolve(hash.digest("hex")))
      .on("error", reject);
  });

/**
 * The runnable server binary for `source`: the file itself, or the `.xz` unpacked into QDRANT_DIR once. The
 * unpacked binary's hash is checked once, when it is made (a file named by its hash is not rewritten), and it is
 * renamed into place only then, so a run cut short or a concurrent one never leaves a half-written binary there.
 */
export async function qdrantBinary(source = QDRANT_BINARY): Promise<string> {
  const reason = qdrantUnavailableReason(source);
  if (reason) throw new Error(`cannot run Qdrant: ${reason}`);
  if (!source.endsWith(".xz")) return source;
  const target = path.join(QDRANT_DIR, `${path.basename(source, ".xz")}-${QDRANT_SHA256.slice(0, 12)}`);
  if (existsSync(target) && statSync(target).size > 0) return target;
  mkdirSync(QDRANT_DIR, { recursive: true });
  const partial = `${target}.${process.pid}.partial`;
  const out = openSync(partial, "w", 0o755);
  try {
    const xz = spawnSync("xz", ["-dc", source], { stdio: ["ignore", out, "pipe"], encoding: "utf8" });
    if (xz.error || xz.status !== 0)
      throw new Error(`unpacking ${source} failed: ${xz.error?.message ?? xz.stderr.trim()}`);
  } catch (err) {
    rmSync(partial, { force: true });
    throw err;
  } finally {
    closeSync(out);
  }
  const got = await sha256(partial);
  if (got !== QDRANT_SHA256) {
    rmSync(partial, { force: true });
    throw new Error(`${source} unpacks to a binary with sha256 ${got}, not the expected ${QDRANT_SHA256}`);
  }
  renameSync(partial, target);
  return target;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface QdrantServerOptions {
  /** An `.xz` or a binary; QDRANT_BINARY when not given. */
  binary?: string;
  /** One node, or a three-node cluster (distributed mode, Raft over the p2p ports) on 127.0.0.1. */
  nodes?: 1 | 3;
  /** Per node: until `/readyz` answers 200 (and, for a cluster, every node counts every peer). */
  startTimeoutMs?: number;
}

/** One Qdrant process: its ports and storage stay across stop/start, as a restarted node's would. */
export class QdrantNode {
  private proc: ChildProcess | undefined;
  private watchdog: ChildProcess | undefined;

  constructor(
    private readonly binary: string,
    readonly dir: string,
    readonly httpPort: number,
    readonly grpcPort: number,
    readonly p2pPort: number,
    /** p2p URI of the node this one joins; undefined for a single node or the cluster's first. */
    private readonly bootstrap: string | undefined,
    private readonly cluster: boolean,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  /** The server process's id while it runs: what a benchmark reads its memory from (/proc/<pid>/status). */
  get pid(): number | undefined {
    return this.running ? this.proc!.pid : undefined;
  }

  get running(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  private get logFile() {
    return path.join(this.dir, "qdrant.log");
  }

  private logTail() {
    return existsSync(this.logFile) ? readFileSync(this.logFile, "utf8").slice(-2000) : "";
  }

  /** Starts the process and waits until it answers `/readyz`. */
  async start(timeoutMs: number): Promise<void> {
    if (this.running) return;
    mkdirSync(this.dir, { recursive: true });
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      QDRANT__SERVICE__HOST: "127.0.0.1",
      QDRANT__SERVICE__HTTP_PORT: String(this.httpPort),
      QDRANT__SERVICE__GRPC_PORT: String(this.grpcPort),
      QDRANT__STORAGE__STORAGE_PATH: path.join(this.dir, "storage"),
      QDRANT__STORAGE__SNAPSHOTS_PATH: path.join(this.dir, "snapshots"),
      QDRANT__TELEMETRY_DISABLED: "true",
      // A test's log is read only when something failed: warnings and errors say enough then.
      QDRANT__LOG_LEVEL: "WARN",
    };
    const args: string[] = [];
    if (this.cluster) {
      env.QDRANT__CLUSTER__ENABLED = "true";
      env.QDRANT__CLUSTER__P2P__PORT = String(this.p2pPort);
      if (this.bootstrap) args.push("--bootstrap", this.bootstrap);
      args.push("--uri", `http://127.0.0.1:${this.p2pPort}`);
    }
    const out = openSync(this.logFile, "a");
    // cwd: the node's folder, where Qdrant writes its `.qdrant-initialized` marker (never the checkout).
    const proc = spawn(this.binary, args, { cwd: this.dir, env, stdio: ["ignore", out, out] });
    closeSync(out);
    this.proc = proc;
    this.watchdog = guardServerProcess(proc, path.basename(this.binary));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running)
        throw new Error(`Qdrant exited during start (code ${this.proc.exitCode}): ${this.logTail()}`);
      try {
        if ((await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(2_000) })).ok) return;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) {
        await this.kill();
        throw new Error(
          `Qdrant on port ${this.httpPort} was not ready in ${timeoutMs} ms: ${this.logTail()}`,
        );
      }
      await sleep(100);
    }
  }

  /** SIGTERM (a clean shutdown), SIGKILL after `graceMs`; the storage is kept. */
  async stop(graceMs = 10_000): Promise<void> {
    await this.end("SIGTERM", graceMs);
  }

  /** SIGKILL, as a lost machine. */
  async kill(): Promise<void> {
    await this.end("SIGKILL", 0);
  }

  /**
   * Deletes what the node keeps (storage, snapshots, the marker of a first start), as a lost disk; the next start
   * is a new peer. Only while it is not running; the log is kept, for the test that fails.
   */
  wipe(): void {
    if (this.running) throw new Error(`Qdrant on port ${this.httpPort} is running: stop or kill it first`);
    for (const name of ["storage", "snapshots", ".qdrant-initialized"])
      rmSync(path.join(this.dir, name), { recursive: true, force: true });
  }

  private async end(signal: NodeJS.Signals, graceMs: number) {
    const proc = this.proc;
    this.watchdog?.kill("SIGKILL");
    this.watchdog = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once("exit", () => r()));
    proc.kill(signal);
    const timer = signal === "SIGKILL" ? undefined : setTimeout(() => proc.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  }
}

/**
 * A real Qdrant on 127.0.0.1 for tests: one node, or a three-node cluster, each on free ports with its storage
 * in a temporary folder that `destroy` removes. The processes die with the test process however it ends
 * (guardServerProcess), so a failed test leaves no server running.
 */
export class QdrantServer {
  /** How long the last start took until every node was ready. */
  startMs = 0;

  private constructor(
    readonly nodes: QdrantNode[],
    readonly dir: string,
    private readonly startTimeoutMs: number,
  ) {}

  static async start(options: QdrantServerOptions = {}): Promise<QdrantServer> {
    const binary = await qdrantBinary(options.binary ?? QDRANT_BINARY);
    const count = options.nodes ?? 1;
    const dir = mkdtempSync(path.join(tmpdir(), "vigil-qdrant-"));
    const nodes: QdrantNode[] = [];
    let first: string | undefined;
    for (let i = 0; i < count; i++) {
      const p2p = await freePort();
      nodes.push(
        new QdrantNode(
          binary,
          path.join(dir, `node${i}`),
          await freePort(),
          await freePort(),
          p2p,
          first,
          count > 1,
        ),
      );
      first ??= `http://127.0.0.1:${p2p}`;
    }
    const server = new QdrantServer(nodes, dir, options.startTimeoutMs ?? 30_000);
    return startOrDestroy(server);
  }

  /** The first node's REST URL: any node of a cluster serves every collection. */
  get url(): string {
    return this.nodes[0]!.url;
  }

  /** Every node's REST URL, for a client that fails over between them. */
  get urls(): string[] {
    return this.nodes.map((n) => n.url);
  }

  /** Starts the nodes that are not running (the first before the others, which join through it). */
  async start(): Promise<void> {
    const started = Date.now();
    for (const node of this.nodes) await node.start(this.startTimeoutMs);
    if (this.nodes.length > 1) await this.waitForPeers(started + this.startTimeoutMs);
    this.startMs = Date.now() - started;
  }

  /** Until every node's `/cluster` counts every peer and names a Raft leader: a collection made before may fail. */
  private async waitForPeers(deadline: number) {
    for (;;) {
      const views = await Promise.all(
        this.nodes.map(async (n) => {
          try {
            const res = await fetch(`${n.url}/cluster`, { signal: AbortSignal.timeout(2_000) });
            const body = (await res.json()) as {
              result?: { peers?: Record<string, unknown>; raft_info?: { leader?: number | null } };
            };
            return Object.keys(body.result?.peers ?? {}).length === this.nodes.length &&
              body.result?.raft_info?.leader != null
              ? true
              : false;
          } catch {
            return false;
          }
        }),
      );
      if (views.every(Boolean)) return;
      if (Date.now() > deadline)
        throw new Error(
          `the Qdrant cluster did not form: ${views.filter(Boolean).length} nodes see it whole`,
        );
      await sleep(200);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
  }

  /** Stops every node and removes their storage. */
  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
