import type { QdrantClient } from "@qdrant/js-client-rest";

/**
 * The oldest Qdrant with every request field the adapters send. The unknown identities' conditional writes
 * (qdrant-identities.ts) use upsert's `update_filter`, first in Qdrant 1.16.0 (qdrant/qdrant
 * docs/redoc/v1.16.x/openapi.json; the docs' "Conditional updates: available as of v1.16.0",
 * qdrant/landing_page#1991), and its `update_mode` (`insert_only` / `update_only`), first in Qdrant 1.17.0
 * (qdrant/qdrant#7963; in docs/redoc/v1.17.x/openapi.json, absent from v1.16.x's). Everything else they send
 * (the query API, `order_by` scrolls, collection existence, filtered `set_payload`) is in Qdrant's 1.10 API
 * already. A server older than this ignores the fields it does not know, so a conditional write would quietly
 * become an unconditional one: lost updates between operators' edits and live assignment, with no error.
 */
export const QDRANT_MIN_VERSION = "1.17.0";

export type QdrantVersion = readonly [major: number, minor: number, patch: number];

/**
 * `1.17.0`, `v1.17.0`, `1.17.0-dev`, `1.17.0+abc` → [1, 17, 0]; anything else → undefined. A pre-release or build
 * suffix counts as its release: a dev build of 1.17 has 1.17's API.
 */
export function parseQdrantVersion(text: unknown): QdrantVersion | undefined {
  const m = /^v?(\d+)\.(\d+)\.(\d+)(?:[-+][0-9A-Za-z.+-]*)?$/.exec(
    typeof text === "string" ? text.trim() : "",
  );
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** Numeric, part by part (1.9 is older than 1.17): negative when `a` is older, 0 when equal. */
export function compareVersions(a: QdrantVersion, b: QdrantVersion): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

/** Whether a version has the API the adapters need. */
export function meetsQdrantMinimum(version: QdrantVersion): boolean {
  return compareVersions(version, parseQdrantVersion(QDRANT_MIN_VERSION)!) >= 0;
}

/** The Qdrant server is older than QDRANT_MIN_VERSION. */
export class QdrantVersionError extends Error {
  override name = "QdrantVersionError";
  /**
   * Not the record's fault: like a server that is away, the pipeline redelivers (dead-letters nothing) until
   * Qdrant is upgraded.
   */
  readonly transient = true;
}

/**
 * Asks the server its version (`GET /`) and refuses one older than QDRANT_MIN_VERSION. A version that does not
 * parse (a fork, a dev build) is let through with a warning.
 */
export async function checkQdrantVersion(
  client: QdrantClient,
  url: string,
  warn: (message: string) => void,
): Promise<void> {
  const { version } = await client.versionInfo();
  const have = parseQdrantVersion(version);
  if (!have) {
    warn(
      `vigil: Qdrant at ${url} reports version ${JSON.stringify(version)}, which does not parse; assuming it ` +
        `is ${QDRANT_MIN_VERSION} or later (the unknown identities' conditional writes need upsert's update_mode ` +
        `and update_filter, which an older server silently ignores).\n`,
    );
    return;
  }
  if (!meetsQdrantMinimum(have))
    throw new QdrantVersionError(
      `Qdrant at ${url} is version ${version}, older than ${QDRANT_MIN_VERSION}, the oldest Vigil can use: ` +
        `it ignores upsert's update_mode and update_filter, which would turn the unknown identities' ` +
        `conditional writes into unconditional ones. Upgrade Qdrant to ${QDRANT_MIN_VERSION} or later.`,
    );
}
