import { mkdtempSync, mkdirSync } from "node:fs";
import path from "node:path";
import type { Config } from "../config/index.ts";

/** A scratch folder under the data directory (benchmarks write large files; /tmp may be small). */
export function tempDirFor(config: Config, prefix: string): string {
  const root = path.resolve(config.dataDir, "tmp");
  mkdirSync(root, { recursive: true });
  return mkdtempSync(path.join(root, `${prefix}-`));
}
