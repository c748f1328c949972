import path from "node:path";
import { describe, expect, it } from "vitest";
import { SqliteStore } from "../store/sqlite-store.ts";
import { tempDir } from "../../test/helpers.ts";
import { storeData } from "./dataset.ts";

const vector = (seed: number) => Float32Array.from({ length: 4 }, (_, i) => Math.sin(seed + i));

describe("training data from the embedded store (--from-store)", () => {
  it("takes enrolled photos and acknowledged alerts of the base model, not excluded or unacknowledged ones", async () => {
    const file = path.join(tempDir("vigil-train-store-"), "vigil.db");
    const store = new SqliteStore(file);
    for (const id of ["ann", "bob"]) await store.upsertPerson({ id, name: id, watchlistId: "default" });
    const face = (faceId: string, personId: string, modelId: string, seed: number) =>
      store.addFace({ faceId, personId, modelId, vector: vector(seed), source: `${faceId}.jpg` });
    await face("ann:1", "ann", "reid-0095", 1);
    await face("ann:2", "ann", "reid-0095", 2);
    await face("bob:1", "bob", "reid-0095", 3);
    await face("bob:old", "bob", "mobilefacenet-faceplugin", 4);
    const alert = (id: string, personId: string, seed: number) => ({
      id,
      watchlistId: "default",
      personId,
      personName: personId,
      cameraId: "cam-1",
      ts: 1_000 + seed,
      score: 0.8,
      threshold: 0.5,
      modelId: "reid-0095",
      faceId: `cam-1:0:${seed}`,
      box: { x: 0, y: 0, width: 10, height: 10 },
      crop: new Uint8Array([0xff, 0xd8]),
      vector: vector(10 + seed),
    });
    await store.addAlerts([alert("a1", "bob", 1), alert("a2", "bob", 2), alert("a3", "ann", 3)]);
    await store.acknowledgeAlert("a1", { by: "op", ts: 2_000, note: null });
    await store.acknowledgeAlert("a2", { by: "op", ts: 2_000, note: "not bob" });
    // a2 was then said not to be Bob: its face is a negative, never a positive of his.
    await store.addExclusion({
      id: "bob:exclusion:a2",
      personId: "bob",
      modelId: "reid-0095",
      vector: vector(12),
      note: "alert a2",
    });
    store.close();

    const data = storeData(file, "reid-0095");
    expect(data.images).toBe(4); // ann:1, ann:2, bob:1 and the acknowledged, not excluded alert a1
    expect(data.identities).toBe(2);
    expect(data.samples.map((s) => s.identity).sort()).toEqual(["ann", "ann", "bob", "bob"]);
    const fromAlert = data.samples.find((s) => s.vector[0] === vector(11)[0]);
    expect(fromAlert?.identity).toBe("bob");
    expect(data.skipped).toEqual([
      "photo bob:old: a vector of mobilefacenet-faceplugin, not of the base model reid-0095",
    ]);
    expect(data.source).toMatch(/4 enrolled photo\(s\), 1 acknowledged alert\(s\)/);
  });

  it("says where the store should be when there is none", () => {
    expect(() => storeData("/nonexistent/vigil.db", "reid-0095")).toThrow(
      /no store at \/nonexistent\/vigil\.db/,
    );
  });
});
