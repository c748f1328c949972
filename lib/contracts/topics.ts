import {
  AlertContract,
  CameraStatusContract,
  DeadLetterContract,
  EmbeddingContract,
  FaceContract,
  FrameContract,
  SightingContract,
  Topics,
  WatchlistChangeContract,
  type TopicName,
} from "./messages.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** One row per topic: what it carries, how it is keyed and how long it is kept. Runner, CLI and manifests read it. */
export interface TopicSpec {
  name: TopicName;
  contract: { name: string; typeId: number; version: number; decode(bytes: Uint8Array): unknown };
  /** What the record key is: records with one key stay in order on one partition. */
  key: "camera" | "watchlist" | "person-or-track" | "source-topic" | "watchlist-person";
  /** Default partition count where the deployment does not say: the most replicas a consuming stage can use. */
  partitions: number;
  retentionMs: number;
  /** Largest record the topic accepts (Kafka's max.message.bytes). */
  maxMessageBytes: number;
  /** What the topic is for, as `vigil topics describe` prints it. */
  purpose: string;
}

export const TopicTable: readonly TopicSpec[] = [
  {
    name: Topics.frames,
    contract: FrameContract,
    key: "camera",
    partitions: 12,
    // A live frame is worth nothing minutes later; keep enough to ride out a detect-align restart.
    retentionMs: 10 * 60_000,
    maxMessageBytes: 2 * 1024 * 1024,
    purpose: "ingest → detect-align: one sampled frame (header + pixels)",
  },
  {
    name: Topics.faces,
    contract: FaceContract,
    key: "camera",
    partitions: 12,
    retentionMs: 6 * HOUR,
    maxMessageBytes: 1024 * 1024,
    purpose: "detect-align → embed: an aligned face crop that passed the quality gate",
  },
  {
    name: Topics.embeddings,
    contract: EmbeddingContract,
    key: "camera",
    partitions: 12,
    retentionMs: 6 * HOUR,
    maxMessageBytes: 1024 * 1024,
    purpose: "embed → match: the face with its L2-normalised vector and model id",
  },
  {
    name: Topics.sightings,
    contract: SightingContract,
    key: "person-or-track",
    partitions: 6,
    retentionMs: 7 * DAY,
    maxMessageBytes: 1024 * 1024,
    purpose: "match → history, API: one tracked appearance (camera, time span, best crop, template vector)",
  },
  {
    name: Topics.alerts,
    contract: AlertContract,
    key: "watchlist",
    partitions: 3,
    retentionMs: 30 * DAY,
    maxMessageBytes: 1024 * 1024,
    purpose: "match → API, webhooks: a watchlist hit (who, where, when, score, crop)",
  },
  {
    name: Topics.cameraStatus,
    contract: CameraStatusContract,
    key: "camera",
    partitions: 3,
    retentionMs: DAY,
    maxMessageBytes: 64 * 1024,
    purpose: "ingest → API: camera state changes and counters",
  },
  {
    name: Topics.watchlistChanges,
    contract: WatchlistChangeContract,
    key: "watchlist-person",
    partitions: 1,
    retentionMs: 7 * DAY,
    maxMessageBytes: 64 * 1024,
    purpose: "CLI, API → match: a person enrolled, changed or removed; matchers refresh their watchlist",
  },
  {
    name: Topics.dlq,
    contract: DeadLetterContract,
    key: "source-topic",
    partitions: 1,
    retentionMs: 14 * DAY,
    maxMessageBytes: 4 * 1024 * 1024,
    purpose: "any stage: an undecodable or poison record with the reason and its original bytes",
  },
];

export function topicSpec(name: string): TopicSpec {
  const spec = TopicTable.find((t) => t.name === name);
  if (!spec) throw new Error(`unknown topic ${name}`);
  return spec;
}
