export interface PeriodicOptions<T> {
  everyS: number;
  /** Told of every pass's result, including passes that changed nothing. */
  onDone?: (result: T) => void;
  /** A failed pass (a store away) is reported and retried at the next period, never fatal to the process. */
  onError?: (err: unknown) => void;
}

/**
 * Housekeeping that must run for as long as a process does (retention, trimming), not only at start: a pass
 * every `everyS`, never two at once, and nothing left running after `stop()`.
 */
export class PeriodicTask<T> {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<T> | undefined;
  private stopped = false;

  constructor(
    private readonly pass: () => Promise<T>,
    private readonly options: PeriodicOptions<T>,
  ) {}

  /** One pass now. A pass already in flight is joined rather than doubled. */
  tick(): Promise<T> {
    this.running ??= this.pass()
      .then((result) => {
        this.options.onDone?.(result);
        return result;
      })
      .finally(() => (this.running = undefined));
    return this.running;
  }

  /** Passes every `everyS`, the first after `firstAfterMs` (default: one period). */
  start(firstAfterMs = this.options.everyS * 1000): this {
    this.stopped = false;
    this.schedule(firstAfterMs);
    return this;
  }

  /** No further pass; waits for one in flight, so the store can be closed after. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => {});
  }

  private schedule(afterMs: number) {
    if (this.stopped) return;
    // A timeout chain, not an interval: a slow pass (millions of expired rows) never overlaps the next.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.tick()
        .catch((err: unknown) => this.options.onError?.(err))
        .finally(() => this.schedule(this.options.everyS * 1000));
    }, afterMs);
    // Housekeeping alone must not keep a finished process alive.
    this.timer.unref();
  }
}
