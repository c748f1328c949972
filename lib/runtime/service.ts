import type { Bus } from "../bus/index.ts";
import { StageRunner, type StageDefinition } from "./runner.ts";
import type { Config } from "../config/index.ts";
import { HealthServer, type ReadinessCheck } from "../telemetry/health-server.ts";
import { createLogger, type Logger } from "../telemetry/log.ts";
import { Metrics } from "../telemetry/metrics.ts";

export interface ServiceContext {
  name: string;
  config: Config;
  bus: Bus;
  log: Logger;
  metrics: Metrics;
  /** /readyz passes only while every check does (the bus's own is added for you). */
  addReadiness(name: string, check: ReadinessCheck): void;
}

export interface RunningService {
  /** Stop fetching, finish and commit the batch in flight, checkpoint, release resources. */
  stop(): Promise<void>;
  /** Resolves if the service ends by itself (ingest of files that all ended). */
  done?: Promise<unknown>;
}

export interface ServiceProcess {
  /** Where /healthz, /readyz and /metrics listen. */
  address: { host: string; port: number };
  /** Stops the service in order (service, HTTP, bus); resolves to the exit code it should end with. */
  stop(reason: string): Promise<number>;
  /** Resolves with the exit code once the service has stopped (a signal, or it ended by itself). */
  exited: Promise<number>;
}

/**
 * One stage as a process: the shared frame around every `services/<stage>/main.ts` — health and metrics over
 * HTTP, the bus, SIGTERM/SIGINT handling within `service.shutdownTimeoutS`, and the order of shutdown.
 */
export async function runService(
  name: string,
  config: Config,
  bus: Bus,
  start: (ctx: ServiceContext) => Promise<RunningService>,
  options: { signals?: boolean } = {},
): Promise<ServiceProcess> {
  const log = createLogger(name, config);
  const metrics = new Metrics(name);
  const health = new HealthServer(metrics);
  let started = false;
  health.addReadiness("started", () => started);
  health.addReadiness("bus", () => bus.healthy());
  const address = await health.listen(config.service.host, config.service.port);
  log.info({ host: address.address, port: address.port }, `${name}: health and metrics listening`);
  let running: RunningService;
  try {
    running = await start({
      name,
      config,
      bus,
      log,
      metrics,
      addReadiness: (n, check) => health.addReadiness(n, check),
    });
  } catch (err) {
    await health.close();
    await bus.close().catch(() => {});
    throw err;
  }
  started = true;
  log.info(`${name}: started`);
  let resolveExit!: (code: number) => void;
  const exited = new Promise<number>((r) => (resolveExit = r));
  let stopping: Promise<number> | undefined;
  const stop = (reason: string): Promise<number> => {
    stopping ??= (async () => {
      log.info({ reason }, `${name}: stopping`);
      const bound = config.service.shutdownTimeoutS * 1000;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), bound)));
      const orderly = (async () => {
        await running.stop();
        await bus.close();
        await health.close();
        return "done" as const;
      })();
      const outcome = await Promise.race([orderly, timedOut]).catch((err: Error) => {
        log.error({ err }, `${name}: failed while stopping`);
        return "failed" as const;
      });
      clearTimeout(timer);
      const code = outcome === "done" ? 0 : 1;
      if (outcome === "timeout") log.error(`${name}: did not stop within ${bound} ms`);
      log.info({ code }, `${name}: stopped`);
      resolveExit(code);
      return code;
    })();
    return stopping;
  };
  if (options.signals !== false) {
    const onSignal = (signal: NodeJS.Signals) => void stop(signal);
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
    void exited.then(() => {
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
    });
  }
  void running.done?.then(() => stop("finished"));
  return { address: { host: address.address, port: address.port }, stop, exited };
}

/** A consuming stage inside a service: its runner, observed by the process's metrics, with lag per partition. */
export async function startStage<M>(
  ctx: ServiceContext,
  definition: StageDefinition<M>,
  release: () => Promise<void> = async () => {},
): Promise<RunningService> {
  const runner = await new StageRunner(ctx.bus, definition.stage, {
    ...definition.run,
    group: ctx.config.service.group ?? definition.run.group,
    observer: ctx.metrics.observer(),
  }).start();
  ctx.metrics.consumerLag(ctx.bus, runner.group, definition.stage.input.topic);
  return {
    stop: async () => {
      try {
        await runner.stop();
      } finally {
        await release();
      }
    },
  };
}
