/**
 * Small durable blobs under string keys, e.g. the match stage's per-partition tracker state, so a replica that
 * takes over a partition resumes its open tracks. A save replaces the whole value atomically.
 */
export interface StateStore {
  saveState(key: string, bytes: Uint8Array): Promise<void>;
  loadState(key: string): Promise<Uint8Array | undefined>;
  /** True when there was a value to delete. */
  deleteState(key: string): Promise<boolean>;
  /** Keys starting with `prefix`, sorted. */
  stateKeys(prefix?: string): Promise<string[]>;
}
