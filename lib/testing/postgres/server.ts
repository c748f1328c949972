import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import {
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { freePort, guardServerProcess, startOrDestroy } from "../process.ts";

/** Where Debian's `postgresql-<version>` packages put their binaries, one folder per major version. */
const DEBIAN_POSTGRES_ROOT = "/usr/lib/postgresql";
/** The binaries a test server needs; `initdb` and `postgres` come from the same package. */
const NEEDED = ["initdb", "postgres"] as const;

/**
 * The folder holding `initdb` and `postgres`: `VIGIL_POSTGRES_BIN`, or the newest major version under
 * /usr/lib/postgresql (Debian 12 ships 15, a later release another), or undefined when there is none.
 */
export function postgresBinDir(): string | undefined {
  const named = process.env.VIGIL_POSTGRES_BIN;
  if (named) return named;
  if (!existsSync(DEBIAN_POSTGRES_ROOT)) return undefined;
  const versions = readdirSync(DEBIAN_POSTGRES_ROOT)
    .filter((v) => /^\d+(\.\d+)?$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const bin = path.join(DEBIAN_POSTGRES_ROOT, v, "bin");
    if (NEEDED.every((b) => existsSync(path.join(bin, b)))) return bin;
  }
  return undefined;
}

/** The account the server runs as when this process is root: PostgreSQL refuses to run as root. */
const SERVER_USER = "postgres";

function userIds(name: string): { uid: number; gid: number } | undefined {
  const id = spawnSync("id", ["-u", name], { encoding: "utf8" });
  const gid = spawnSync("id", ["-g", name], { encoding: "utf8" });
  if (id.status !== 0 || gid.status !== 0) return undefined;
  return { uid: Number(id.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

const runningAsRoot = () => process.getuid?.() === 0;

/** Why a local PostgreSQL cannot be run here, or undefined when it can. */
export function postgresUnavailableReason(): string | undefined {
  const bin = postgresBinDir();
  if (!bin)
    return `PostgreSQL is not installed: no ${DEBIAN_POSTGRES_ROOT}/<version>/bin/initdb (apt-get install postgresql, or VIGIL_SETUP_TEST_DEPS=1 bash scripts/setup.sh; VIGIL_POSTGRES_BIN names another folder)`;
  const missing = NEEDED.filter((b) => !existsSync(path.join(bin, b)));
  if (missing.length) return `${bin} has no ${missing.join(" or ")}`;
  if (runningAsRoot() && !userIds(SERVER_USER))
    return `this process is root, which PostgreSQL refuses to run as, and there is no "${SERVER_USER}" user to run it as`;
  if (runningAsRoot() && spawnSync("setpriv", ["--version"], { stdio: "ignore" }).status !== 0)
    return "this process is root and setpriv (util-linux) is not there to run PostgreSQL as another user";
  return undefined;
}

/**
 * The live (not zombie) processes of the group `pgid` leads, from /proc: a backend reparented to a pid 1 that
 * never reaps stays a zombie, which `kill(pid, 0)` would still count.
 */
function liveGroupMembers(pgid: number): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue; // Gone meanwhile.
    }
    // "pid (comm) state ppid pgrp …"; comm may hold spaces and parentheses, so read after the last ")".
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(pgrp) === pgid && state !== "Z") pids.push(Number(name));
  }
  return pids;
}

/** SIGKILL to a pid (or, negative, a process group) that may have gone meanwhile. */
function killQuietly(pid: number) {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface PostgresServerOptions {
  /** The folder with `initdb` and `postgres`; postgresBinDir() when not given. */
  binDir?: string;
  startTimeoutMs?: number;
}

/**
 * A real PostgreSQL on 127.0.0.1 for tests, from the Debian package's binaries: `initdb` into a temporary folder
 * (trust authentication, user `postgres`), the server on a free port with its unix socket inside that folder.
 * Stop and start keep the port and the data, as a restarted server would; `destroy` removes the folder. The server
 * dies with the test process however it ends (guardServerProcess), so a failed test leaves none running.
 *
 * When this process is root the binaries run as the `postgres` user (PostgreSQL refuses root) through `setpriv`,
 * which execs rather than forks: the process started here is the postmaster itself, so the guard and the signals
 * below reach it, not a wrapper that might outlive it.
 */
export class PostgresServer {
  private proc: ChildProcess | undefined;
  private watchdog: ChildProcess | undefined;
  /** How long the last start took until the server answered a query. */
  startMs = 0;

  private constructor(
    private readonly binDir: string,
    readonly dir: string,
    readonly port: number,
    private readonly startTimeoutMs: number,
  ) {}

  static async start(options: PostgresServerOptions = {}): Promise<PostgresServer> {
    const reason = options.binDir ? undefined : postgresUnavailableReason();
    const binDir = options.binDir ?? postgresBinDir();
    if (reason || !binDir) throw new Error(`cannot run PostgreSQL: ${reason ?? "no binaries"}`);
    const dir = mkdtempSync(path.join(tmpdir(), "vigil-pg-"));
    const server = new PostgresServer(binDir, dir, await freePort(), options.startTimeoutMs ?? 60_000);
    return startOrDestroy(server);
  }

  private get dataDir() {
    return path.join(this.dir, "data");
  }

  /** Where the server's unix socket lives: inside the temporary folder, never the system's /run/postgresql. */
  get socketDir(): string {
    return path.join(this.dir, "socket");
  }

  private get logFile() {
    return path.join(this.dir, "postgres.log");
  }

  /** A connection string for `database` (the `postgres` database, which initdb makes, by default). */
  url(database = "postgres"): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${encodeURIComponent(database)}`;
  }

  get running(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** The postmaster's pid while it runs. */
  get pid(): number | undefined {
    return this.running ? this.proc!.pid : undefined;
  }

  private logTail() {
    return existsSync(this.logFile) ? readFileSync(this.logFile, "utf8").slice(-2000) : "";
  }

  /** `binary args…` as the user the server runs as: itself, or `postgres` when this process is root. */
  private command(binary: string, args: string[]): [string, string[]] {
    const exe = path.join(this.binDir, binary);
    if (!runningAsRoot()) return [exe, args];
    return ["setpriv", ["--reuid", SERVER_USER, "--regid", SERVER_USER, "--init-groups", "--", exe, ...args]];
  }

  /** Makes the folders and, the first time, the cluster. */
  private init(): void {
    mkdirSync(this.socketDir, { recursive: true });
    if (runningAsRoot()) {
      // The folder is root's (mkdtemp); the server account must own what it writes into.
      const ids = userIds(SERVER_USER)!;
      for (const d of [this.dir, this.socketDir]) chownSync(d, ids.uid, ids.gid);
    }
    if (existsSync(path.join(this.dataDir, "PG_VERSION"))) return;
    const [cmd, args] = this.command("initdb", [
      "-D",
      this.dataDir,
      "-U",
      "postgres",
      "--auth=trust",
      "--encoding=UTF8",
      // C collation: the same ordering on every machine, whatever locales are installed.
      "--locale=C",
      // A test cluster does not need its files flushed to disk; this saves seconds per start.
      "--no-sync",
      "--no-instructions",
    ]);
    const initdb = spawnSync(cmd, args, { cwd: this.dir, encoding: "utf8", timeout: 120_000 });
    if (initdb.error || initdb.status !== 0)
      throw new Error(
        `initdb into ${this.dataDir} failed: ${initdb.error?.message ?? (initdb.stderr || initdb.stdout).trim()}`,
      );
  }

  /** Starts the postmaster (making the cluster first, once) and waits until it answers a query. */
  async start(): Promise<void> {
    if (this.running) return;
    const started = Date.now();
    this.init();
    const [cmd, args] = this.command("postgres", [
      "-D",
      this.dataDir,
      "-p",
      String(this.port),
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      `unix_socket_directories=${this.socketDir}`,
      // Throwaway data: a crash of the machine may lose it, a killed server does not (a commit still writes its
      // WAL to the OS before it returns; only the flush to disk is skipped). synchronous_commit stays on: off,
      // a killed server would lose its last commits, and the crash tests would see that.
      "-c",
      "fsync=off",
      "-c",
      "full_page_writes=off",
      // Room for several pools of several processes at once (the concurrent-writer and replica tests).
      "-c",
      "max_connections=200",
    ]);
    const out = openSync(this.logFile, "a");
    // The postmaster runs in the foreground as this process's child (not `pg_ctl start`, which detaches it), so
    // it can be guarded and signalled by pid; in a process group of its own, so `kill` takes its backends too.
    const proc = spawn(cmd, args, { cwd: this.dir, stdio: ["ignore", out, out], detached: true });
    closeSync(out);
    this.proc = proc;
    // The data folder is unique to this server: a recycled pid running something else never matches it.
    this.watchdog = guardServerProcess(proc, this.dataDir);
    try {
      await this.waitReady(started + this.startTimeoutMs);
    } catch (err) {
      await this.kill();
      throw err;
    }
    this.startMs = Date.now() - started;
  }

  private async waitReady(deadline: number): Promise<void> {
    let last: unknown;
    for (;;) {
      if (!this.running)
        throw new Error(`PostgreSQL exited during start (code ${this.proc?.exitCode}): ${this.logTail()}`);
      const client = new pg.Client({ connectionString: this.url(), connectionTimeoutMillis: 2_000 });
      try {
        await client.connect();
        await client.query("SELECT 1");
        return;
      } catch (err) {
        // Refused while it starts, then "the database system is starting up" until recovery ends.
        last = err;
      } finally {
        await client.end().catch(() => {});
      }
      if (Date.now() > deadline)
        throw new Error(
          `PostgreSQL on port ${this.port} did not answer in time (${(last as Error | undefined)?.message}): ${this.logTail()}`,
        );
      await sleep(100);
    }
  }

  /** A new, empty database on this server; its connection string is `url(name)`. */
  async createDatabase(name: string): Promise<string> {
    if (!/^[a-z_][a-z0-9_]*$/.test(name))
      throw new Error(`not a plain database name: ${JSON.stringify(name)}`);
    const client = new pg.Client({ connectionString: this.url() });
    await client.connect();
    try {
      await client.query(`CREATE DATABASE ${name}`);
    } finally {
      await client.end();
    }
    return this.url(name);
  }

  /**
   * A fast shutdown (SIGINT: open transactions are rolled back, clients disconnected; SIGTERM would wait for
   * every client to leave), SIGKILL after `graceMs`. The data is kept.
   */
  async stop(graceMs = 15_000): Promise<void> {
    await this.end("SIGINT", graceMs);
  }

  /**
   * SIGKILL to the postmaster and every backend, as a crashed machine; the next start recovers from the
   * write-ahead log. The whole group, and waited for: a backend left behind holds the shared memory, and the next
   * start would refuse to run beside it.
   */
  async kill(): Promise<void> {
    const pid = this.proc?.pid;
    await this.end("SIGKILL", 0);
    if (pid === undefined) return;
    const deadline = Date.now() + 10_000;
    for (let left = liveGroupMembers(pid); left.length > 0; left = liveGroupMembers(pid)) {
      if (Date.now() > deadline)
        throw new Error(`PostgreSQL processes ${left.join(", ")} outlived SIGKILL for 10 s`);
      for (const p of left) killQuietly(p);
      await sleep(20);
    }
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  private async end(signal: NodeJS.Signals, graceMs: number) {
    const proc = this.proc;
    this.watchdog?.kill("SIGKILL");
    this.watchdog = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once("exit", () => r()));
    // SIGKILL, at once or after the grace time, goes to the whole group: backends die with their postmaster.
    if (signal === "SIGKILL") killQuietly(-proc.pid!);
    else proc.kill(signal);
    const timer = signal === "SIGKILL" ? undefined : setTimeout(() => killQuietly(-proc.pid!), graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** Stops the server and removes its folder (cluster, socket and log). */
  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
