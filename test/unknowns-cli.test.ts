import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { seededRandom } from "../lib/eval/cluster.ts";
import { l2normalize } from "../lib/geometry/index.ts";
import type { Sighting } from "../lib/store/sighting-store.ts";
import { SqliteApiStore } from "../lib/store/sqlite-api-store.ts";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import { sightingOf, tempDir } from "./helpers.ts";

const random = seededRandom(3);
const direction = () => l2normalize(new Float32Array(32).map(() => random() - 0.5));
const near = (v: Float32Array) => {
  const d = direction();
  return l2normalize(v.map((x, k) => x + 0.2 * d[k]!));
};
const sighting = (id: string, cameraId: string, startTs: number, vector: Float32Array): Sighting =>
  sightingOf({ id, cameraId, startTs, vector, faces: 2, crop: Uint8Array.of(0xff, 0xd8) });

describe("vigil unknowns (the CLI over the service, on the embedded store)", () => {
  it("lists, shows, names, merges, splits and deletes, one line each, and audits the changes", async () => {
    const file = path.join(tempDir("vigil-unknowns-cli-"), "vigil.db");
    const store = new SqliteStore(file);
    const face = direction();
    const seen: Record<string, string> = {};
    for (const [id, camera, ts, v] of [
      ["c1", "door", 1_000, near(face)],
      ["c2", "yard", 5_000, near(face)],
      ["c3", "door", 9_000, direction()],
    ] as const) {
      const s = sighting(id, camera, ts, v);
      await store.addSightings([s]);
      seen[id] = (await store.unknowns.assignUnknown(s, 0.6)).id;
    }
    store.close();
    const a = seen.c1!;
    const b = seen.c3!;
    expect(seen.c2).toBe(a);

    const vigil = (...args: string[]) =>
      spawnSync(process.execPath, ["bin/vigil.js", "unknowns", ...args], {
        encoding: "utf8",
        env: { ...process.env, VIGIL_STORE__PATH: file, VIGIL_LOG__LEVEL: "warn" },
        timeout: 120_000,
      });

    const list = vigil("list", "--json");
    expect(list.status, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout).items.map((u: { id: string }) => u.id)).toEqual([b, a]);
    const lines = vigil("list", "--camera", "yard");
    expect(lines.stdout.trim().split("\n")).toEqual([
      expect.stringMatching(new RegExp(`^${a} .* 2 sighting`)),
    ]);

    expect(vigil("name", a, "Courier").stdout).toContain(`${a} is now named Courier`);
    const shown = JSON.parse(vigil("show", a, "--json").stdout);
    expect(shown.identity).toMatchObject({ id: a, name: "Courier", count: 2, cameras: ["door", "yard"] });
    expect(shown.sightings.map((s: { id: string }) => s.id)).toEqual(["c2", "c1"]);

    expect(vigil("merge", a, b).stdout).toContain(`merged ${b} into ${a}`);
    const split = vigil("split", a, "c3");
    expect(split.stdout).toMatch(new RegExp(`split 1 sighting\\(s\\) off ${a} into unknown-[0-9a-f]{12}`));
    expect(vigil("delete", a).stdout).toContain(`deleted ${a}`);

    // Mistakes are one line and exit 1.
    const missing = vigil("delete", a);
    expect(missing.status).toBe(1);
    expect(missing.stderr.trim()).toBe(`vigil: no unknown identity ${a}`);
    const noName = vigil("name", b);
    expect(noName.status).toBe(1);
    expect(noName.stderr).toContain("give a name, or --clear");

    const audit = new SqliteApiStore(file);
    const actions = (await audit.listAudit({ limit: 20 })).items.map((e) => [e.action, e.target, e.outcome]);
    audit.close();
    // Looking is recorded as the API records it; the refused second delete is recorded too, as failed; a usage
    // error (no name given) never reached the store.
    expect(actions).toEqual([
      ["unknown.delete", a, "failed"],
      ["unknown.delete", a, "ok"],
      ["unknown.split", a, "ok"],
      ["unknown.merge", a, "ok"],
      ["unknown.view", a, "ok"],
      ["unknown.name", a, "ok"],
      ["unknown.list", null, "ok"],
      ["unknown.list", null, "ok"],
    ]);
    const audit2 = new SqliteApiStore(file);
    const listed = (await audit2.listAudit({ limit: 20 })).items.filter((e) => e.action === "unknown.list");
    audit2.close();
    expect(listed[0]!.summary).toMatchObject({ cameras: ["yard"], returned: 1 });
    expect(listed[1]!.summary).toMatchObject({ returned: 2 });
  }, 180_000);
});
