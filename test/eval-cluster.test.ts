import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { sharedData, skipReason } from "./helpers.ts";

const images = sharedData("lfw-dev", "images");
if (!images) skipReason("vigil eval cluster on LFW dev", "../shared/data/lfw-dev/images");

describe.skipIf(!images)("vigil eval cluster on the LFW dev images (people with ≥ 2 images)", () => {
  it("merges strangers rarely (BCubed precision ≥ 0.98) and finds people again (F1 ≥ 0.93)", async () => {
    // Asynchronously: a minute of a blocked event loop would starve vitest's worker of its own messages.
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [path.resolve("bin/vigil.js"), "eval", "cluster", "--images", images!, "--json"],
      {
        env: { ...process.env, VIGIL_DATA_DIR: path.resolve(".vigil") },
        timeout: 600_000,
        maxBuffer: 16 << 20,
      },
    );
    const report = JSON.parse(stdout) as Record<string, number>;
    console.log(
      `eval cluster: P ${report.bcubedPrecision!.toFixed(4)} R ${report.bcubedRecall!.toFixed(4)} F1 ${report.bcubedF1!.toFixed(4)}, ${report.identitiesMade} identities for ${report.identitiesTrue}`,
    );
    expect(report.bcubedPrecision).toBeGreaterThanOrEqual(0.98);
    expect(report.bcubedF1).toBeGreaterThanOrEqual(0.93);
    expect(report.identitiesTrue).toBe(450);
  });
});
