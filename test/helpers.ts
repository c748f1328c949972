import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { loadConfig, type Config } from "../lib/config/index.ts";
import { loadVision, type Vision } from "../lib/vision/inference/vision.ts";
import type { VigilEvent } from "../lib/events/events.ts";

/** The development data beside the project (../shared/data), or VIGIL_SHARED_DATA. */
export function sharedData(...parts: string[]): string | undefined {
  const root = process.env.VIGIL_SHARED_DATA ?? path.resolve("../shared/data");
  const p = path.join(root, ...parts);
  return existsSync(p) ? p : undefined;
}

/** Prints why a suite is skipped, so a skipped test is never silent. */
export function skipReason(what: string, needed: string): string {
  const reason = `skipping ${what}: ${needed} not found (set VIGIL_SHARED_DATA to the shared data folder)`;
  console.log(reason);
  return reason;
}

export const tempDir = (prefix = "vigil-test-") => mkdtempSync(path.join(tmpdir(), prefix));

/** Tests share the project's model and npm caches (pulled once by setup), nothing else. */
export function testConfig(overrides: Record<string, unknown> = {}): Config {
  return loadConfig({
    env: {
      ...(process.env.VIGIL_MODEL_MIRROR ? { VIGIL_MODEL_MIRROR: process.env.VIGIL_MODEL_MIRROR } : {}),
    },
    overrides: {
      dataDir: path.resolve(".vigil"),
      "store.path": path.join(tempDir("vigil-store-"), "vigil.db"),
      "log.level": "warn",
      ...overrides,
    },
  });
}

let vision: Promise<Vision> | undefined;
export function sharedVision(): Promise<Vision> {
  vision ??= loadVision(testConfig());
  return vision;
}

export function collect() {
  const events: VigilEvent[] = [];
  return { events, emit: (e: VigilEvent) => void events.push(e) };
}

export const ofType = <T extends VigilEvent["type"]>(events: VigilEvent[], type: T) =>
  events.filter((e): e is Extract<VigilEvent, { type: T }> => e.type === type);
