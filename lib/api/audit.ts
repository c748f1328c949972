import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import type { Config } from "../config/index.ts";
import { openApiStore } from "../store/open-store.ts";
import { cliActor } from "./keys.ts";

export interface CliAction<T> {
  /** The API's name for the same action (`search`, `timeline.person`, `person.enrol`, …). */
  action: string;
  target: string | null;
  summary?: Record<string, unknown>;
  /** What the result adds to the entry (ids made, counts). */
  result?: (result: T) => Record<string, unknown>;
}

/**
 * Runs a command's use case and writes it to the audit log as the API would, by `cli:<user>`: the command line
 * reaches the same history and watchlist as the API, so who searched for whom is recorded whichever way it came.
 * A failure is recorded as `failed` with its message, then rethrown.
 */
export async function audited<T>(config: Config, what: CliAction<T>, run: () => Promise<T>): Promise<T> {
  let result: T;
  try {
    result = await run();
  } catch (err) {
    await record(config, what, "failed", { error: (err as Error).message }).catch((auditErr: unknown) =>
      process.stderr.write(`vigil: could not write the audit log: ${(auditErr as Error).message}\n`),
    );
    throw err;
  }
  await record(config, what, "ok", what.result?.(result) ?? {});
  return result;
}

async function record(config: Config, what: CliAction<never>, outcome: "ok" | "failed", extra: object) {
  const store = await openApiStore(config);
  try {
    await store.append({
      ts: Date.now(),
      actor: cliActor(),
      action: what.action,
      target: what.target,
      outcome,
      status: null,
      summary: { ...what.summary, ...extra },
      ip: null,
    });
  } finally {
    await store.close();
  }
}

/** What the audit log keeps of a photo given on the command line: its name, size and digest, never its pixels. */
export function fileSummary(file: string): Record<string, unknown> {
  try {
    const bytes = readFileSync(file);
    return {
      name: path.basename(file),
      bytes: bytes.length,
      sha256: createHash("sha256").update(bytes).digest("hex").slice(0, 16),
    };
  } catch {
    return { name: path.basename(file) };
  }
}

/** Drops undefined fields, so audit summaries (the API's and the CLI's) list only the filters that were given. */
export const defined = (o: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
