import { describe, expect, it } from "vitest";
import { benchSearch } from "../cli/commands/bench-search.ts";
import { qdrantUnavailableReason } from "../lib/testing/qdrant/server.ts";
import { testConfig } from "./helpers.ts";

/**
 * `vigil bench search --store qdrant` on a small collection: the benchmark starts its own Qdrant, writes through
 * the Qdrant store (int8 quantized sightings, rescored), waits for the index, and reports recall against exact
 * search, filtered and not, with the server's memory and disk. The figures at scale come from the command.
 */
const skip = process.env.QDRANT_URL ? undefined : qdrantUnavailableReason();
if (skip) console.log(`skipping bench search --store qdrant: ${skip}`);

describe.skipIf(!!skip)("bench search --store qdrant", () => {
  it("measures search over the Qdrant store against exact search, and what the server holds", async () => {
    const r = await benchSearch(testConfig(), 3000, 20, {
      store: "qdrant",
      qdrantUrl: process.env.QDRANT_URL ? [process.env.QDRANT_URL] : undefined,
    });
    expect(r).toMatchObject({ store: "qdrant", sightings: 3000, queries: 20, indexMemoryMB: null });
    expect(r.recallAt10).toBeGreaterThanOrEqual(0.95);
    expect(r.recallAt10Filtered).toBeGreaterThanOrEqual(0.95);
    expect(r.p95Ms).toBeGreaterThan(0);
    expect(r.watchlistPeople).toBeNull();
    if (!process.env.QDRANT_URL) {
      expect(r.qdrant!.rssMB).toBeGreaterThan(0);
      expect(r.qdrant!.diskMB).toBeGreaterThan(0);
    }
  }, 300_000);
});
