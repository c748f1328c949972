import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll } from "vitest";
import type { BusRecord } from "../lib/bus/index.ts";
import { NamespacedBus } from "../lib/bus/namespaced-bus.ts";
import { TopicTable } from "../lib/contracts/index.ts";
import { testBus, testKafka, uniqueName, type TestKafka } from "../lib/testing/kafka/index.ts";
import { ServiceProcess } from "../lib/testing/service-process.ts";
import { tempDir } from "./helpers.ts";
import { until as poll } from "../lib/testing/process.ts";

/** Polls as lib/testing's `until`, at the pace and patience a broker and four processes need. */
export const until = <T>(
  what: string,
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 90_000,
) => poll(what, fn, timeoutMs, 250);

/**
 * A Vigil deployment for the scale-out tests: a namespace on the run's shared broker with the topic table's
 * topics (2 partitions each), a config file its service processes share, and a bus to watch it with.
 * `configFor` writes a variant (another store, another consumer group) beside it.
 */
export async function deployment(
  kafka: TestKafka,
  processes: ServiceProcess[],
  extra: Record<string, unknown> = {},
) {
  const prefix = `${uniqueName("vigil")}.`;
  const dir = tempDir("vigil-kafka-");
  const raw = testBus(kafka.address);
  await raw.ensureTopics(
    TopicTable.map((t) => ({
      name: `${prefix}${t.name}`,
      partitions: 2,
      retentionMs: 3_600_000,
      maxMessageBytes: t.maxMessageBytes,
      replicationFactor: 1,
    })),
  );
  const bus = new NamespacedBus(raw, prefix);
  const config = {
    dataDir: path.resolve(".vigil"),
    bus: {
      kind: "kafka",
      topicPrefix: prefix,
      kafka: { brokers: [kafka.address], sessionTimeoutMs: 6000, heartbeatIntervalMs: 500, maxWaitMs: 250 },
    },
    store: { path: path.join(dir, "vigil.db") },
    models: { detectWorkers: 1, embedWorkers: 1 },
    ingest: { fps: 5 },
    ...extra,
  };
  const configFor = (name: string, overrides: Record<string, unknown> = {}) => {
    const file = path.join(dir, `${name}.json`);
    writeFileSync(file, JSON.stringify({ ...config, ...overrides }));
    return file;
  };
  const configFile = configFor("vigil");
  const start = (stage: string, env: Record<string, string> = {}, file = configFile) => {
    const p = new ServiceProcess(stage, { configFile: file, env });
    processes.push(p);
    return p;
  };
  return { prefix, dir, bus, raw, configFile, config, configFor, start };
}

/** Collects a topic's records (in the namespace) from the start, as a fresh consumer group. */
export async function collect(bus: NamespacedBus, topic: string) {
  const records: BusRecord[] = [];
  const sub = await bus.subscribe(
    topic,
    { group: uniqueName("watch") },
    async (rs) => void records.push(...rs),
  );
  return { records, stop: () => sub.stop() };
}

/** Polls `fn` until it gives something truthy (errors count as not yet). */

/**
 * A test file's hold on the run's shared broker: resolved before its tests, every service process it started
 * killed after them. `kafka()` is undefined when no broker could be had (the tests then skip, having said why).
 */
export function useKafka() {
  let kafka: TestKafka | undefined;
  const processes: ServiceProcess[] = [];
  beforeAll(async () => {
    kafka = await testKafka();
  });
  afterAll(async () => {
    await Promise.all(processes.map((p) => p.kill("SIGKILL")));
  });
  return {
    kafka: () => kafka,
    deployment: (extra: Record<string, unknown> = {}) => deployment(kafka!, processes, extra),
  };
}
