import type { BatchHandler, Bus, OutRecord, SubscribeOptions, Subscription, TopicPartition } from "./bus.ts";

/**
 * Several deployments (or test runs) on one broker, each in its own namespace: topic and consumer-group names
 * get a prefix on the way out and lose it on the way in, so stages only ever see the names of the topic table.
 */
export class NamespacedBus implements Bus {
  constructor(
    private readonly inner: Bus,
    readonly prefix: string,
  ) {}

  private out = (name: string) => `${this.prefix}${name}`;
  private in = (name: string) => (name.startsWith(this.prefix) ? name.slice(this.prefix.length) : name);
  private inPartitions = (ps: TopicPartition[]) => ps.map((p) => ({ ...p, topic: this.in(p.topic) }));

  publish(topic: string, records: OutRecord[]): Promise<void> {
    return this.inner.publish(this.out(topic), records);
  }

  subscribe(
    topics: string | readonly string[],
    options: SubscribeOptions,
    handler: BatchHandler,
  ): Promise<Subscription> {
    const names = (typeof topics === "string" ? [topics] : [...topics]).map(this.out);
    return this.inner.subscribe(
      names,
      {
        ...options,
        group: this.out(options.group),
        onAssign: options.onAssign && ((ps) => options.onAssign!(this.inPartitions(ps))),
        onRevoke: options.onRevoke && ((ps) => options.onRevoke!(this.inPartitions(ps))),
      },
      (records, context) =>
        handler(
          records.map((r) => ({ ...r, topic: this.in(r.topic) })),
          context,
        ),
    );
  }

  healthy(): boolean {
    return this.inner.healthy();
  }

  lag(group: string, topic: string) {
    if (!this.inner.lag) return Promise.resolve([]);
    return this.inner.lag(this.out(group), this.out(topic));
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
