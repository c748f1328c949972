import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ackCommand, searchCommand, sightingsCommand, timelineCommand } from "../cli/commands/history.ts";
import { enrolCommand, removeCommand, thresholdCommand } from "../cli/commands/watchlist.ts";
import type { AuditEntry } from "../lib/store/audit-store.ts";
import { cropLargestFace, samplePhotos } from "../lib/media/sample-media.ts";
import { openApiStore } from "../lib/store/open-store.ts";
import { sharedVision, tempDir, testConfig } from "./helpers.ts";

describe("the command line is audited like the API: who searched for whom, whichever way it came", () => {
  const dir = tempDir("vigil-cli-audit-");
  const config = testConfig({ "store.path": path.join(dir, "vigil.db") });
  let face: string;
  const audit = async (): Promise<AuditEntry[]> => {
    const store = await openApiStore(config);
    try {
      return (await store.listAudit({ limit: 100 })).items.reverse();
    } finally {
      await store.close();
    }
  };

  beforeAll(async () => {
    vi.spyOn(console, "log").mockImplementation(() => {});
    const photos = await samplePhotos(path.resolve(".vigil/cache"));
    face = path.join(dir, "alice.jpg");
    await cropLargestFace(await sharedVision(), photos[0]!, face);
  }, 120_000);
  afterAll(() => vi.restoreAllMocks());

  it("records enrolment, search, timeline, browsing, threshold and removal with their summaries", async () => {
    await enrolCommand(config, [face], { person: "alice", watchlist: "default" });
    await searchCommand(config, { image: face, top: 5, camera: ["door"] });
    await timelineCommand(config, { person: "alice", mergeGapS: 30 });
    await sightingsCommand(config, { limit: 10, person: "alice" });
    await thresholdCommand(config, { watchlist: "default", value: 0.55 });
    await thresholdCommand(config, { watchlist: "default" }); // a read: not a change, not recorded
    await removeCommand(config, { person: "alice" });

    const entries = await audit();
    expect(entries.map((e) => e.action)).toEqual([
      "person.enrol",
      "search",
      "timeline.person",
      "sightings.browse",
      "watchlist.threshold",
      "person.remove",
    ]);
    expect(entries.every((e) => e.actor.name.startsWith("cli:") && e.actor.keyId === null)).toBe(true);
    expect(entries.every((e) => e.outcome === "ok")).toBe(true);
    const [enrol, search, timeline] = entries;
    expect(enrol).toMatchObject({
      target: "alice",
      summary: { files: ["alice.jpg"], enrolled: 1, refused: 0 },
    });
    // The photo is named and digested, never stored.
    expect(search!.summary).toMatchObject({
      photo: { name: "alice.jpg" },
      cameras: ["door"],
      limit: 5,
      hits: 0,
    });
    expect((search!.summary as { photo: { sha256: string } }).photo.sha256).toMatch(/^[0-9a-f]{16}$/);
    expect(timeline).toMatchObject({ target: "alice" });
  }, 120_000);

  it("records a refused action as failed, with the reason, and the chain still verifies", async () => {
    await expect(ackCommand(config, "no-such-alert", { by: "desk" })).rejects.toThrow(/no-such-alert/);
    const last = (await audit()).at(-1)!;
    expect(last).toMatchObject({ action: "alert.acknowledge", target: "no-such-alert", outcome: "failed" });
    expect(String(last.summary.error)).toMatch(/no-such-alert/);
    const store = await openApiStore(config);
    try {
      expect((await store.verifyAudit()).ok).toBe(true);
    } finally {
      await store.close();
    }
  });
});
