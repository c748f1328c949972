import type { Config } from "../config/index.ts";
import { TopicTable, Topics } from "../contracts/index.ts";
import type { KafkaBus, KafkaBusOptions, TopicSettings } from "./kafka-bus.ts";
import type { Bus } from "./bus.ts";
import { MemoryBus, type MemoryBusOptions } from "./memory-bus.ts";
import { NamespacedBus } from "./namespaced-bus.ts";

/** The Kafka client settings of a config, with each topic's record-batch limit from the topic table. */
export function kafkaOptions(config: Config, extra: Partial<KafkaBusOptions> = {}): KafkaBusOptions {
  const k = config.bus.kafka;
  return {
    brokers: k.brokers,
    clientId: k.clientId,
    ssl: k.ssl,
    ...(k.sasl ? { sasl: k.sasl } : {}),
    compression: k.compression,
    sessionTimeoutMs: k.sessionTimeoutMs,
    heartbeatIntervalMs: k.heartbeatIntervalMs,
    maxWaitMs: k.maxWaitMs,
    fetchMaxBytes: k.fetchMaxBytes,
    connectionTimeoutMs: k.connectionTimeoutMs,
    requestTimeoutMs: k.requestTimeoutMs,
    // Keyed as the broker names them: NamespacedBus adds bus.topicPrefix before the Kafka bus sees a topic.
    maxMessageBytes: Object.fromEntries(
      TopicTable.map((t) => [`${config.bus.topicPrefix}${t.name}`, t.maxMessageBytes]),
    ),
    ...extra,
  };
}

/**
 * What `vigil topics create` makes: the topic table (in its order, names with bus.topicPrefix), with the
 * config's partition (keyed by the table's name) and replica overrides.
 */
export function topicSettings(config: Config): TopicSettings[] {
  const k = config.bus.kafka;
  return TopicTable.map((t) => ({
    name: `${config.bus.topicPrefix}${t.name}`,
    partitions: k.partitions[t.name] ?? t.partitions,
    retentionMs: t.retentionMs,
    maxMessageBytes: t.maxMessageBytes,
    ...(k.replicationFactor ? { replicationFactor: k.replicationFactor } : {}),
  }));
}

/**
 * The bus a config asks for: in memory (one process) or Kafka (scale-out). kafkajs is loaded only for the
 * latter (about 150 ms and its memory, which the embedded path and worker threads need not pay).
 */
export async function openBus(
  config: Config,
  extra: { memory?: Partial<MemoryBusOptions>; kafka?: Partial<KafkaBusOptions> } = {},
): Promise<MemoryBus | KafkaBus> {
  if (config.bus.kind === "kafka") {
    const { KafkaBus } = await import("./kafka-bus.ts");
    return new KafkaBus(kafkaOptions(config, extra.kafka));
  }
  return new MemoryBus({
    capacity: config.bus.queueCapacity,
    topicCapacity: { [Topics.frames]: config.bus.frameQueueCapacity },
    ...extra.memory,
  });
}

/**
 * The bus a process's stages and services use: `openBus`, seen through `bus.topicPrefix` when one is set, so
 * they only ever name the topic table's topics.
 */
export async function openStageBus(config: Config): Promise<Bus> {
  const bus = await openBus(config);
  return config.bus.topicPrefix ? new NamespacedBus(bus, config.bus.topicPrefix) : bus;
}
