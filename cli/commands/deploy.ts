import { writeFileSync } from "node:fs";
import { topicSettings } from "../../lib/bus/open-bus.ts";
import type { Config } from "../../lib/config/index.ts";
import { TopicTable } from "../../lib/contracts/index.ts";

export interface KafkaTopicsOptions {
  /** The Strimzi `Kafka` resource the topics belong to (its `strimzi.io/cluster` label). */
  cluster: string;
  /** How to make the file again, written into its header. */
  regenerate?: string;
}

/** Kubernetes object names are DNS subdomains; a topic prefix may hold `_` or capitals, which they may not. */
export function topicResourceName(topic: string): string {
  const name = topic
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, "-")
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, "");
  if (!name) throw new Error(`topic ${JSON.stringify(topic)} gives no valid Kubernetes name`);
  return name.slice(0, 253);
}

/**
 * Strimzi `KafkaTopic` resources for every topic of the table, as the config sees them (topic prefix, partition
 * overrides, replication factor), in YAML that prettier leaves as it is. Written by hand rather than through a
 * YAML library: the compiled image carries no dev dependencies, and the shape is fixed and small.
 */
export function kafkaTopicsYaml(config: Config, opts: KafkaTopicsOptions): string {
  const header = [
    "# Generated from the topic table (lib/contracts/topics.ts) and the config; do not edit.",
    ...(opts.regenerate ? [`# Make it again with: ${opts.regenerate}`] : []),
    "# test/k8s-manifests.test.ts fails when this file and the generator's output differ.",
  ];
  const docs = topicSettings(config).map((t, i) => {
    const spec = TopicTable[i]!;
    const lines = [
      `# ${spec.purpose} (key: ${spec.key})`,
      "apiVersion: kafka.strimzi.io/v1",
      "kind: KafkaTopic",
      "metadata:",
      `  name: ${topicResourceName(t.name)}`,
      "  labels:",
      `    strimzi.io/cluster: ${opts.cluster}`,
      "spec:",
      `  topicName: ${JSON.stringify(t.name)}`,
      `  partitions: ${t.partitions}`,
      // Absent: the broker's default.replication.factor, which each overlay sets for its cluster size.
      ...(t.replicationFactor ? [`  replicas: ${t.replicationFactor}`] : []),
      "  config:",
      `    retention.ms: ${t.retentionMs}`,
      `    max.message.bytes: ${t.maxMessageBytes}`,
    ];
    return lines.join("\n");
  });
  return `${header.join("\n")}\n${docs.join("\n---\n")}\n`;
}

export const DEFAULT_KAFKA_CLUSTER = "vigil";

/** The command line that makes a topics file again, as its header quotes it. */
export function regenerateTopicsCommand(
  configPath: string | undefined,
  out: string,
  cluster: string,
): string {
  return [
    "npx vigil",
    ...(configPath ? [`--config ${configPath}`] : []),
    "deploy topics",
    ...(cluster !== DEFAULT_KAFKA_CLUSTER ? [`--cluster ${cluster}`] : []),
    `--out ${out}`,
  ].join(" ");
}

/** `vigil deploy topics`: the KafkaTopic resources on stdout, or into a file. */
export function deployTopicsCommand(
  config: Config,
  opts: { out?: string; cluster: string; configPath?: string },
): void {
  const regenerate = opts.out ? regenerateTopicsCommand(opts.configPath, opts.out, opts.cluster) : undefined;
  const text = kafkaTopicsYaml(config, { cluster: opts.cluster, regenerate });
  if (!opts.out) {
    process.stdout.write(text);
    return;
  }
  writeFileSync(opts.out, text);
  process.stderr.write(`vigil: ${TopicTable.length} KafkaTopic resources written to ${opts.out}\n`);
}
