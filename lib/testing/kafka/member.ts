/**
 * A consumer-group member in its own process, for tests that kill one outright (`kill -9`), which an
 * in-process subscription cannot imitate: the broker then only learns of the death when the session expires.
 *
 *   tsx lib/testing/kafka/member.ts <broker> <topic> <group> hang
 *
 * `hang`: prints the first batch it is handed as one JSON line ({"offsets": ["partition@offset", …]}) and never
 * finishes it, so nothing it was handed is ever committed.
 */
import { testBus } from "./index.ts";

const [address, topic, group, mode] = process.argv.slice(2);
if (!address || !topic || !group || mode !== "hang") {
  process.stderr.write("usage: member.ts <broker> <topic> <group> hang\n");
  process.exit(2);
}
// A short session, so the group notices the death in seconds.
const bus = testBus(address, { sessionTimeoutMs: 3_000, heartbeatIntervalMs: 500 });
await bus.subscribe(topic, { group, maxBatch: 100 }, async (records, context) => {
  process.stdout.write(`${JSON.stringify({ offsets: records.map((r) => `${r.partition}@${r.offset}`) })}\n`);
  // Alive and in the group (heartbeating) until killed: only the kill ends its membership.
  setInterval(() => void context.heartbeat(), 300);
  await new Promise(() => {});
});
process.stdout.write(`${JSON.stringify({ subscribed: true })}\n`);
