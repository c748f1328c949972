import { describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import path from "node:path";
import Database from "better-sqlite3";
import { vectorToBytes } from "../lib/contracts/index.ts";
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

/** Polls `check` until it holds; returns how long that took (ms), or throws after `timeoutMs`. */
async function within(timeoutMs: number, check: () => Promise<boolean>): Promise<number> {
  const start = performance.now();
  while (performance.now() - start < timeoutMs) {
    if (await check()) return performance.now() - start;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`not seen within ${timeoutMs} ms`);
}

/** Runs store calls in a separate Node process, as `vigil enroll` does beside a running `vigil run`. */
function inAnotherProcess(file: string, body: string): Promise<void> {
  const code = `import { SqliteStore } from "./lib/store/sqlite-store.ts";
    const store = new SqliteStore(process.argv[1]);
    const v = new Float32Array(256).map((_, k) => Math.sin(5 + k * 0.37));
    ${body}
    store.close();`;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code, file], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  return new Promise((resolve, reject) =>
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`writer exited with ${code}`)))),
  );
}

describe("a running store sees watchlist changes made elsewhere (the enrol-while-running defect)", () => {
  const probe = new Float32Array(256).map((_, k) => Math.sin(5 + k * 0.37));
  const matches = async (store: SqliteStore) =>
    ((await store.match("m", [probe], 1))[0] ?? []).map((m) => m.person.id);

  it("through another connection to the same file: enrolled within 2 s, removed within 2 s", async () => {
    const file = path.join(tempDir(), "vigil.db");
    const running = new SqliteStore(file);
    const enroller = new SqliteStore(file);
    expect(await matches(running)).toEqual([]);
    await enroller.upsertPerson({ id: "eve", name: "Eve", watchlistId: "default" });
    await enroller.addFace({
      faceId: "eve:1.jpg",
      personId: "eve",
      modelId: "m",
      vector: probe,
      source: "1.jpg",
    });
    expect(await within(2000, async () => (await matches(running)).includes("eve"))).toBeLessThan(2000);
    await enroller.removePerson("eve");
    expect(await within(2000, async () => (await matches(running)).length === 0)).toBeLessThan(2000);
    running.close();
    enroller.close();
  });

  it("through another process: enrolled, then one photo removed, each seen within 2 s", async () => {
    const file = path.join(tempDir(), "vigil.db");
    const running = new SqliteStore(file);
    expect(await matches(running)).toEqual([]);
    await inAnotherProcess(
      file,
      `await store.upsertPerson({ id: "eve", name: "Eve", watchlistId: "default" });
       await store.addFace({ faceId: "eve:1.jpg", personId: "eve", modelId: "m", vector: v, source: "1.jpg" });`,
    );
    expect(await within(2000, async () => (await matches(running)).includes("eve"))).toBeLessThan(2000);
    expect(running.reloads.watchlist).toBe(1);
    await inAnotherProcess(file, `if (!(await store.removeFace("eve:1.jpg"))) process.exit(3);`);
    expect(await within(2000, async () => (await matches(running)).length === 0)).toBeLessThan(2000);
    // Matching again and again reads the file no more than the changes require.
    for (let i = 0; i < 50; i++) await matches(running);
    expect(running.reloads.watchlist).toBe(2);
    running.close();
  });

  it("a write that bypasses the store's code (plain SQL, an older Vigil) is seen too", async () => {
    const file = path.join(tempDir(), "vigil.db");
    const running = new SqliteStore(file, { refreshMs: 0 });
    expect(await matches(running)).toEqual([]);
    const raw = new Database(file);
    raw.prepare("INSERT INTO people (id, name, watchlist_id) VALUES ('eve', 'Eve', 'default')").run();
    raw
      .prepare(
        "INSERT INTO faces (face_id, person_id, model_id, vector, source) VALUES (?, 'eve', 'm', ?, 'x')",
      )
      .run("eve:1.jpg", vectorToBytes(probe));
    expect(await matches(running)).toEqual(["eve"]);
    raw.prepare("DELETE FROM faces").run();
    expect(await matches(running)).toEqual([]);
    raw.close();
    running.close();
  });

  it("two processes enrolling into one file at the same time both succeed, and each sees all", async () => {
    const file = path.join(tempDir(), "vigil.db");
    const store = new SqliteStore(file, { refreshMs: 0 });
    const child = inAnotherProcess(
      file,
      `for (let i = 0; i < 1500; i++) {
         await store.upsertPerson({ id: "child" + i, name: "x", watchlistId: "default" });
         await store.addFace({ faceId: "child" + i + ":1", personId: "child" + i, modelId: "m", vector: v, source: "x" });
       }`,
    );
    // Start once the other process is writing, so the two really interleave.
    await within(30_000, async () => (await store.getPerson("child0")) !== undefined);
    const childStillWriting = (await store.getPerson("child1499")) === undefined;
    for (let i = 0; i < 300; i++) {
      await store.upsertPerson({ id: `parent${i}`, name: "x", watchlistId: "default" });
      await store.addFace({
        faceId: `parent${i}:1`,
        personId: `parent${i}`,
        modelId: "m",
        vector: probe,
        source: "x",
      });
    }
    await child;
    expect(childStillWriting).toBe(true);
    expect((await store.listPeople()).length).toBe(1800);
    expect((await store.match("m", [probe], 2000))[0]).toHaveLength(1800);
    store.close();
  });

  it("invalidate() makes the next match read the file at once, however long the poll interval", async () => {
    const file = path.join(tempDir(), "vigil.db");
    const running = new SqliteStore(file, { refreshMs: 3_600_000 });
    const enroller = new SqliteStore(file);
    expect(await matches(running)).toEqual([]);
    await enroller.upsertPerson({ id: "eve", name: "Eve", watchlistId: "default" });
    await enroller.addFace({
      faceId: "eve:1.jpg",
      personId: "eve",
      modelId: "m",
      vector: probe,
      source: "1.jpg",
    });
    expect(await matches(running)).toEqual([]);
    running.invalidate();
    expect(await matches(running)).toEqual(["eve"]);
    running.close();
    enroller.close();
  });

  it("its own write right after another connection's does not hide the other's", async () => {
    const file = path.join(tempDir(), "vigil.db");
    const running = new SqliteStore(file, { refreshMs: 0 });
    const enroller = new SqliteStore(file);
    await matches(running);
    await enroller.upsertPerson({ id: "eve", name: "Eve", watchlistId: "default" });
    await enroller.addFace({
      faceId: "eve:1.jpg",
      personId: "eve",
      modelId: "m",
      vector: probe,
      source: "1.jpg",
    });
    // Not read yet by `running`, which now writes too.
    await running.upsertPerson({ id: "zed", name: "Zed", watchlistId: "default" });
    expect(await matches(running)).toEqual(["eve"]);
    running.close();
    enroller.close();
  });

  it("sightings written and purged through another connection are searched within 2 s", async () => {
    const file = path.join(tempDir(), "vigil.db");
    const q = { faceSize: 80, interOcular: 30, sharpness: 100, yawDeg: 0, pitchDeg: 0, detScore: 0.9 };
    const running = new SqliteStore(file);
    const writer = new SqliteStore(file);
    const found = async () =>
      (await running.search({ modelId: "m", vector: probe, top: 3 })).map((h) => h.sighting.id);
    await writer.addSightings([
      {
        id: "s1",
        trackId: "t1",
        cameraId: "door",
        startTs: 1000,
        endTs: 2000,
        faces: 2,
        modelId: "m",
        quality: q,
        match: null,
        vector: probe,
        crop: new Uint8Array(1),
      },
    ]);
    expect(await within(2000, async () => (await found()).includes("s1"))).toBeLessThan(2000);
    expect(await writer.purgeBefore(5000)).toBe(1);
    // A purged row is skipped at once, and the index is rebuilt at the next check.
    expect(await found()).toEqual([]);
    await within(2000, async () => (await found()).length === 0 && running.reloads.sightings === 1);
    running.close();
    writer.close();
  });
});
