export * from "./bus.ts";
export * from "./memory-bus.ts";
export * from "./open-bus.ts";
// Types only: importing the bus must not load kafkajs (openBus loads it when the config asks for Kafka).
export type { KafkaBus, KafkaBusOptions, KafkaLogEntry, LiveTopic, TopicSettings } from "./kafka-bus.ts";
