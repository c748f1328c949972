import { spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync, statSync } from "node:fs";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { until } from "../lib/testing/process.ts";
import { PostgresServer, postgresUnavailableReason } from "../lib/testing/postgres/server.ts";

const skip = postgresUnavailableReason();
if (skip) console.log(`skipping the PostgreSQL harness tests: ${skip}`);

async function query<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

/** Whether a process runs (a zombie, dead but not yet reaped by whoever adopted it, does not). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** The real uid a process runs as, from /proc. */
const uidOf = (pid: number) => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);

describe.skipIf(skip !== undefined)(
  "the PostgreSQL test harness (Debian's binaries, a temporary cluster)",
  () => {
    let server: PostgresServer;
    beforeAll(async () => {
      server = await PostgresServer.start();
    });
    afterAll(async () => {
      await server?.destroy();
    });

    it("runs a cluster of its own on 127.0.0.1, never as root, with its socket inside its folder", async () => {
      const [row] = await query<{ version: string; addr: string }>(
        server.url(),
        "SELECT version() AS version, host(inet_server_addr()) AS addr",
      );
      expect(row!.version).toMatch(/^PostgreSQL \d+/);
      expect(row!.addr).toBe("127.0.0.1");
      expect(uidOf(server.pid!)).not.toBe(0);
      expect(existsSync(`${server.socketDir}/.s.PGSQL.${server.port}`)).toBe(true);
      expect(server.socketDir.startsWith(server.dir)).toBe(true);
    });

    it("makes separate databases, and keeps committed rows across a clean restart and a crash", async () => {
      const url = await server.createDatabase("harness_restart");
      await query(url, "CREATE TABLE t (v INTEGER)");
      await query(url, "INSERT INTO t VALUES (1)");
      await server.restart();
      await query(url, "INSERT INTO t VALUES (2)");
      const before = server.pid!;
      // SIGKILL to the postmaster and its backends: the next start replays the write-ahead log.
      await server.kill();
      expect(server.running).toBe(false);
      await server.start();
      expect(server.pid).not.toBe(before);
      expect((await query<{ v: number }>(url, "SELECT v FROM t ORDER BY v")).map((r) => r.v)).toEqual([1, 2]);
      expect(
        await query(server.url(), "SELECT 1 FROM pg_database WHERE datname = 'harness_restart'"),
      ).toHaveLength(1);
    });

    it("leaves no process and no folder behind once destroyed", async () => {
      const other = await PostgresServer.start();
      const { pid, dir } = { pid: other.pid!, dir: other.dir };
      expect(statSync(dir).isDirectory()).toBe(true);
      await other.destroy();
      expect(existsSync(dir)).toBe(false);
      expect(alive(pid)).toBe(false);
    });

    it("removes its folder when the cluster cannot be made, and says what failed", async () => {
      const err = await PostgresServer.start({ binDir: "/nonexistent/postgresql/bin" }).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err?.message).toMatch(/initdb into \/.*vigil-pg-[^/]+\/data failed/);
      const dir = /(\/\S*vigil-pg-[^/]+)\/data/.exec(err!.message)![1]!;
      expect(existsSync(dir)).toBe(false);
    });

    it("takes its server down with it when the test process is killed outright", async () => {
      // A test process that dies by SIGKILL runs no hook: the detached watchdog must end the postmaster.
      const code = `import { PostgresServer } from "./lib/testing/postgres/server.ts";
      const s = await PostgresServer.start();
      console.log(JSON.stringify({ pid: s.pid, dir: s.dir }));
      setInterval(() => {}, 1000);`;
      const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout }).once("line", resolve);
        child.once("exit", (c) => reject(new Error(`the child exited with ${c} before starting PostgreSQL`)));
      });
      const { pid, dir } = JSON.parse(line) as { pid: number; dir: string };
      try {
        expect(alive(pid)).toBe(true);
        child.kill("SIGKILL");
        await until("the orphaned postmaster to die", () => !alive(pid), 10_000, 100);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  },
);
