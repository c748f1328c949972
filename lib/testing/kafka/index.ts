import { randomBytes } from "node:crypto";
import { KafkaBus, type KafkaBusOptions, type KafkaLogEntry } from "../../bus/kafka-bus.ts";

export { KafkaBroker, kafkaUnavailableReason, KAFKA_LIBS } from "./broker.ts";

/** The run's shared broker, as a test file sees it. */
export interface TestKafka {
  address: string;
  /** False for an outside broker (VIGIL_TEST_KAFKA=host:port): it cannot be stopped from here. */
  controllable: boolean;
  /** Clean shutdown; the log directory and port are kept for `start`. */
  stop(): Promise<void>;
  /** SIGKILL, as a crashed machine. */
  kill(): Promise<void>;
  start(): Promise<void>;
}

let shared: Promise<TestKafka | undefined> | undefined;

/**
 * The shared test broker, started on first use by the vitest global setup; undefined (with the reason printed)
 * when there is none, so the caller can skip.
 */
export function testKafka(): Promise<TestKafka | undefined> {
  shared ??= (async () => {
    const outside = process.env.VIGIL_TEST_KAFKA;
    if (outside === "off" || outside === "0") return skip("VIGIL_TEST_KAFKA=off");
    const unsupported = () => Promise.reject(new Error("an outside broker cannot be stopped by the tests"));
    if (outside) {
      return {
        address: outside,
        controllable: false,
        stop: unsupported,
        kill: unsupported,
        start: unsupported,
      };
    }
    // Imported here so the rest of this module also serves scripts that run outside vitest.
    const { inject } = await import("vitest");
    const control = inject("vigilKafkaControl");
    if (!control) return skip("the vitest global setup lib/testing/kafka/global-setup.ts did not run");
    const call = async (method: string, route: string) => {
      const res = await fetch(`${control}${route}`, { method });
      const body = (await res.json()) as { address?: string; error?: string };
      if (!res.ok) throw new Error(body.error ?? `${route}: HTTP ${res.status}`);
      return body;
    };
    try {
      const { address } = await call("GET", "/broker");
      return {
        address: address!,
        controllable: true,
        stop: async () => void (await call("POST", "/broker/stop")),
        kill: async () => void (await call("POST", "/broker/kill")),
        start: async () => void (await call("POST", "/broker/start")),
      };
    } catch (err) {
      return skip(`no Kafka broker could be started: ${(err as Error).message}`);
    }
  })();
  return shared;
}

function skip(reason: string): undefined {
  console.log(`skipping the Kafka tests: ${reason}`);
  return undefined;
}

/** Topic and group names no other test (or earlier run against an outside broker) has used. */
export const uniqueName = (prefix: string) =>
  `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;

/**
 * A KafkaBus tuned for tests: short sessions and heartbeats so rebalances and failovers take a second or two,
 * quick retries, and kafkajs' log kept (printed only when asked) instead of sprayed over the test output.
 */
export function testBus(
  address: string,
  options: Partial<KafkaBusOptions> = {},
): KafkaBus & { logs: KafkaLogEntry[] } {
  const logs: KafkaLogEntry[] = [];
  const bus = new KafkaBus({
    brokers: [address],
    clientId: "vigil-test",
    sessionTimeoutMs: 6_000,
    heartbeatIntervalMs: 500,
    maxWaitMs: 250,
    retryDelayMs: 50,
    retryMaxDelayMs: 500,
    healthCheckMs: 500,
    connectionTimeoutMs: 1_000,
    requestTimeoutMs: 10_000,
    closeTimeoutMs: 5_000,
    log: (entry) => {
      if (process.env.VIGIL_TEST_KAFKA_LOG) console.log(JSON.stringify(entry));
      logs.push(entry);
    },
    ...options,
  });
  return Object.assign(bus, { logs });
}

/** Creates a topic (idempotent) through the bus's own admin path. */
export async function createTopic(bus: KafkaBus, name: string, partitions: number): Promise<void> {
  await bus.ensureTopics([
    { name, partitions, retentionMs: 3_600_000, maxMessageBytes: 1_048_576, replicationFactor: 1 },
  ]);
}
