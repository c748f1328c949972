import { spawn, type ChildProcess } from "node:child_process";
import { connect, createServer } from "node:net";

/** A TCP port on 127.0.0.1 that was free a moment ago, for a test server to listen on. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

/** Whether something accepts connections on 127.0.0.1:port. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Every server process a test harness started, so none outlives this process whatever way it ends. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * Makes sure a test server dies with this process: killed by an exit hook on a normal exit, and by a detached
 * watchdog within a second when this process dies by SIGKILL (no hook runs then). The watchdog checks that the pid
 * still runs `marker` before killing, so a recycled pid is never hit. Returns the watchdog, to kill when the
 * server is stopped on purpose.
 */
export function guardServerProcess(proc: ChildProcess, marker: string): ChildProcess | undefined {
  live.add(proc);
  proc.once("exit", () => live.delete(proc));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => {
      for (const p of live) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    });
  }
  if (!proc.pid) return undefined;
  const script = `
    while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done
    if kill -0 "$2" 2>/dev/null && grep -q "$3" "/proc/$2/cmdline" 2>/dev/null; then kill -9 "$2"; fi`;
  const dog = spawn("sh", ["-c", script, "watchdog", String(process.pid), String(proc.pid), marker], {
    detached: true,
    stdio: "ignore",
  });
  dog.unref();
  return dog;
}

/**
 * Polls `fn` until it gives something truthy (returned) or `timeoutMs` passes (an error naming `what`, and the
 * last error `fn` threw, if it threw). A throw is a "not yet": a service still starting refuses connections.
 */
export async function until<T>(
  what: string,
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 60_000,
  everyMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Starts a test server; one that fails to start is destroyed (its process and folder) before the error goes on. */
export async function startOrDestroy<T extends { start(): Promise<void>; destroy(): Promise<void> }>(
  server: T,
): Promise<T> {
  try {
    await server.start();
  } catch (err) {
    await server.destroy();
    throw err;
  }
  return server;
}
