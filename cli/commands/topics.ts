import type { KafkaBus, LiveTopic } from "../../lib/bus/kafka-bus.ts";
import { kafkaOptions, topicSettings } from "../../lib/bus/open-bus.ts";
import type { Config } from "../../lib/config/index.ts";
import { TopicTable } from "../../lib/contracts/index.ts";

/** 600000 → "10m", 604800000 → "7d": the units retention is thought of in. */
export function formatDuration(ms: number): string {
  const units: [string, number][] = [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1_000],
  ];
  if (ms < 0) return "forever";
  for (const [unit, size] of units) if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

export function formatBytes(n: number): string {
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} B`;
}

export interface TopicReport {
  name: string;
  partitions: number;
  retentionMs: number;
  maxMessageBytes: number;
  key: string;
  purpose: string;
  /** What the broker has; absent when the topic does not exist there or the broker was not reached. */
  live?: LiveTopic;
  /** Where the broker differs from the table and config. */
  drift: string[];
}

async function openKafka(config: Config): Promise<KafkaBus> {
  const { KafkaBus } = await import("../../lib/bus/kafka-bus.ts");
  // A command, not a service: say quickly that the broker is away instead of retrying for a minute.
  return new KafkaBus(kafkaOptions(config, { retries: 2, closeTimeoutMs: 3_000 }));
}

function report(config: Config, live: LiveTopic[]): TopicReport[] {
  return topicSettings(config).map((want, i) => {
    const spec = TopicTable[i]!;
    const have = live.find((l) => l.name === want.name);
    const drift: string[] = [];
    if (have) {
      if (have.partitions !== want.partitions)
        drift.push(`${have.partitions} partitions, not ${want.partitions}`);
      if (have.retentionMs !== undefined && have.retentionMs !== want.retentionMs) {
        drift.push(`retention ${formatDuration(have.retentionMs)}, not ${formatDuration(want.retentionMs)}`);
      }
      if (have.maxMessageBytes !== undefined && have.maxMessageBytes !== want.maxMessageBytes) {
        drift.push(`max ${formatBytes(have.maxMessageBytes)}, not ${formatBytes(want.maxMessageBytes)}`);
      }
    }
    return {
      name: want.name,
      partitions: want.partitions,
      retentionMs: want.retentionMs,
      maxMessageBytes: want.maxMessageBytes,
      key: spec.key,
      purpose: spec.purpose,
      ...(have ? { live: have } : {}),
      drift,
    };
  });
}

/**
 * `vigil topics create`: every topic of the table that the broker lacks, with its partitions (the table's, or
 * `bus.kafka.partitions`), retention and max message size. Existing topics are left alone and differences
 * reported: raising partitions would move keys (cameras) to other partitions mid-stream, so that stays a
 * deliberate operator step.
 */
export async function topicsCreate(
  config: Config,
  opts: { json?: boolean } = {},
): Promise<TopicReport[] | undefined> {
  const bus = await openKafka(config);
  try {
    let created: string[];
    try {
      ({ created } = await bus.ensureTopics(topicSettings(config)));
    } catch (err) {
      process.stderr.write(
        `vigil: cannot create topics on ${config.bus.kafka.brokers.join(", ")}: ${(err as Error).message}\n`,
      );
      return undefined;
    }
    const reports = report(config, await bus.describeTopics(topicSettings(config).map((t) => t.name)));
    if (opts.json) {
      console.log(JSON.stringify(reports.map((r) => ({ ...r, created: created.includes(r.name) }))));
      return reports;
    }
    for (const r of reports) {
      const what = `${r.name} (${r.partitions} partitions, retention ${formatDuration(r.retentionMs)}, max ${formatBytes(r.maxMessageBytes)})`;
      const status = created.includes(r.name) ? "created" : "exists ";
      console.log(`${status} ${what}${r.drift.length ? `; on the broker: ${r.drift.join(", ")}` : ""}`);
    }
    return reports;
  } finally {
    await bus.close();
  }
}

/** `vigil topics describe`: the table (with config overrides), and what the broker has when it can be reached. */
export async function topicsDescribe(config: Config, opts: { json?: boolean } = {}): Promise<TopicReport[]> {
  const bus = await openKafka(config);
  let live: LiveTopic[] | undefined;
  let unreachable: string | undefined;
  try {
    live = await bus.describeTopics(topicSettings(config).map((t) => t.name));
  } catch (err) {
    unreachable = (err as Error).message;
  } finally {
    await bus.close();
  }
  const reports = report(config, live ?? []);
  if (opts.json) {
    console.log(
      JSON.stringify({
        brokers: config.bus.kafka.brokers,
        reachable: !unreachable,
        error: unreachable,
        topics: reports,
      }),
    );
    return reports;
  }
  console.log(
    `brokers ${config.bus.kafka.brokers.join(", ")}: ${unreachable ? `not reachable (${unreachable})` : "reachable"}`,
  );
  for (const r of reports) {
    console.log(
      `${r.name.padEnd(24)} ${String(r.partitions).padStart(2)} partitions  retention ${formatDuration(r.retentionMs).padEnd(4)} max ${formatBytes(r.maxMessageBytes).padEnd(8)} key ${r.key}`,
    );
    console.log(`    ${r.purpose}`);
    if (unreachable) continue;
    if (!r.live) {
      console.log("    broker: missing (vigil topics create)");
      continue;
    }
    const l = r.live;
    const retention = l.retentionMs === undefined ? "?" : formatDuration(l.retentionMs);
    const max = l.maxMessageBytes === undefined ? "?" : formatBytes(l.maxMessageBytes);
    console.log(
      `    broker: ${l.partitions} partitions × ${l.replicationFactor} replica(s), retention ${retention}, max ${max}${r.drift.length ? ` — differs: ${r.drift.join(", ")}` : ""}`,
    );
  }
  return reports;
}
