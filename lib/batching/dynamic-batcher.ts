export interface BatcherOptions {
  maxBatch: number;
  /** Longest time the first queued item waits for company before the batch runs anyway. */
  maxWaitMs: number;
  /**
   * Batches running at once (default 1). A runner that hands each batch to one of N worker threads wants N or
   * more, or all but one worker sit idle while the batch in hand finishes.
   */
  concurrency?: number;
}

interface Pending<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
}

/**
 * Collects items from many callers (many cameras) into batches for one runner. A batch runs when it is full
 * or when its oldest item has waited `maxWaitMs`; up to `concurrency` batches run at a time (one by default),
 * and each caller gets its own result.
 */
export class DynamicBatcher<I, O> {
  private queue: Pending<I, O>[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running = 0;
  private oldestAt = 0;
  /** Sizes of the batches run so far, for metrics and tests. */
  readonly batchSizes: number[] = [];

  constructor(
    private readonly options: BatcherOptions,
    private readonly runner: (items: I[]) => Promise<O[]>,
  ) {
    if (options.maxBatch < 1) throw new Error("maxBatch must be at least 1");
  }

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      if (this.queue.length === 0) this.oldestAt = Date.now();
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  submitMany(items: I[]): Promise<O[]> {
    return Promise.all(items.map((i) => this.submit(i)));
  }

  private schedule() {
    if (this.busy() || this.queue.length === 0) return;
    if (this.queue.length >= this.options.maxBatch) {
      this.flush();
      return;
    }
    if (!this.timer) {
      const wait = Math.max(0, this.oldestAt + this.options.maxWaitMs - Date.now());
      this.timer = setTimeout(() => this.flush(), wait);
    }
  }

  private flush() {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.busy() || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.options.maxBatch);
    if (this.queue.length > 0) this.oldestAt = Date.now();
    this.running++;
    this.batchSizes.push(batch.length);
    void this.runner(batch.map((p) => p.item))
      .then((results) => {
        if (results.length !== batch.length) {
          throw new Error(`batch runner returned ${results.length} results for ${batch.length} items`);
        }
        batch.forEach((p, i) => p.resolve(results[i]!));
      })
      .catch((err: unknown) => batch.forEach((p) => p.reject(err)))
      .finally(() => {
        this.running--;
        this.schedule();
      });
    // A full batch behind this one starts now if there is room for it.
    this.schedule();
  }

  private busy(): boolean {
    return this.running >= (this.options.concurrency ?? 1);
  }
}
