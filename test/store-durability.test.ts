import { describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import path from "node:path";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import { tempDir } from "./helpers.ts";

describe("embedded store durability", () => {
  it("loses no enrolled person and no stored sighting when the process is killed between writes", async () => {
    const file = path.join(tempDir(), "vigil.db");
    const child = spawn(process.execPath, ["--import", "tsx", "test/fixtures/store-writer.ts", file], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let written = -1;
    await new Promise<void>((resolve) => {
      child.stdout.on("data", (d: Buffer) => {
        for (const m of d.toString().matchAll(/wrote (\d+)/g)) written = Number(m[1]);
        if (written >= 40 && child.exitCode === null) child.kill("SIGKILL");
      });
      child.on("exit", () => resolve());
    });
    expect(child.signalCode).toBe("SIGKILL");
    const store = new SqliteStore(file);
    const people = await store.listPeople();
    // Everything reported as written is there (the write in flight when killed may or may not be).
    for (let i = 0; i <= written; i++) expect(people.find((p) => p.id === `p${i}`)?.faces).toBe(1);
    expect(await store.count()).toBeGreaterThanOrEqual(written + 1);
    const probe = new Float32Array(256).map((_, k) => Math.sin(17 * 7 + k));
    const [hit] = await store.search({ modelId: "m", vector: probe, top: 1 });
    expect(hit?.sighting.id).toBe("s17");
    const [matches] = await store.match("m", [probe], 1);
    expect(matches?.[0]?.person.id).toBe("p17");
    store.close();
  });

  it("persists exclusions and watchlist thresholds, and purges sightings past retention", async () => {
    const file = path.join(tempDir(), "vigil.db");
    const q = { faceSize: 80, interOcular: 30, sharpness: 100, yawDeg: 0, pitchDeg: 0, detScore: 0.9 };
    const v = (seed: number) => new Float32Array(8).map((_, k) => Math.cos(seed + k));
    let store = new SqliteStore(file);
    await store.upsertPerson({ id: "x", name: "X", watchlistId: "vip" });
    await store.addExclusion({ id: "e1", personId: "x", modelId: "m", vector: v(1), note: "not X" });
    await store.setWatchlistThreshold("vip", 0.62);
    await store.addSightings(
      [1000, 2000, 3000].map((t) => ({
        id: `s${t}`,
        trackId: `t${t}`,
        cameraId: "c",
        startTs: t,
        endTs: t + 10,
        faces: 1,
        modelId: "m",
        quality: q,
        match: null,
        vector: v(t),
        crop: new Uint8Array(1),
      })),
    );
    store.close();
    store = new SqliteStore(file);
    expect(await store.watchlistThreshold("vip")).toBe(0.62);
    expect(await store.exclusionScore("x", "m", v(1))).toBeCloseTo(
      new Float32Array(8).map((_, k) => Math.cos(1 + k)).reduce((s, a) => s + a * a, 0),
      4,
    );
    expect(await store.purgeBefore(2500)).toBe(2);
    expect(await store.count()).toBe(1);
    const hits = await store.search({ modelId: "m", vector: v(1000), top: 5 });
    expect(hits.map((h) => h.sighting.id)).toEqual(["s3000"]);
    store.close();
  });
});
