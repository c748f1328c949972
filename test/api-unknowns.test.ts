import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Role } from "../lib/store/key-store.ts";
import type { Sighting } from "../lib/store/sighting-store.ts";
import { apiHarness, BLACK, BLUE, GREEN, photo, RED, sighting, vec, type Harness } from "./api-harness.ts";

const now = Date.now();
type Method = "GET" | "POST" | "PUT" | "DELETE";
const THRESHOLD = 0.9;

/** Every unknown-identity route (operator for all but promotion, an enrolment: admin), with a valid body. */
const ROUTES: [Method, string, object?][] = [
  ["GET", "/v1/unknowns"],
  ["GET", "/v1/unknowns/unknown-000000000000"],
  ["GET", "/v1/unknowns/unknown-000000000000/sightings"],
  ["PUT", "/v1/unknowns/unknown-000000000000/name", { name: "x" }],
  ["POST", "/v1/unknowns/unknown-000000000000/promote", {}],
  ["POST", "/v1/unknowns/unknown-000000000000/merge", { from: "unknown-111111111111" }],
  ["POST", "/v1/unknowns/unknown-000000000000/split", { sightingIds: ["s"] }],
  ["DELETE", "/v1/unknowns/unknown-000000000000"],
];

describe("operator API: unknown identities, over inject on the embedded store", () => {
  let h: Harness;
  /** Unknown identity ids by the colour of their face. */
  const ids: Record<string, string> = {};
  const call = (method: Method, url: string, role: Role = "operator", body?: object) =>
    h.app.inject({ method, url, headers: h.auth(role), ...(body ? { payload: body } : {}) });
  const auditOf = async (action: string) => (await h.apiStore.listAudit({ limit: 100, action })).items;

  /** Stores a sighting and assigns it as the match stage does; its crop is a photo of its colour. */
  const see = async (s: Sighting, colour: { r: number; g: number; b: number }) => {
    const withCrop = { ...s, crop: new Uint8Array(await photo(colour)) };
    await h.store.addSightings([withCrop]);
    return (await h.store.unknowns.assignUnknown(withCrop, THRESHOLD)).id;
  };

  beforeAll(async () => {
    h = await apiHarness({ "api.rateLimit.perMinute": 1_000_000, "api.rateLimit.burst": 100_000 });
    // A red stranger on two cameras (three sightings), a green one, a blue one, and a dark crop on the green one.
    ids.red = await see(sighting("u-red-1", "door", now - 60_000, vec(1, 0.05, 0.05)), RED);
    await see(sighting("u-red-2", "lobby", now - 40_000, vec(1, 0.08, 0.05)), RED);
    await see(sighting("u-red-3", "door", now - 20_000, vec(1, 0.05, 0.08)), RED);
    ids.green = await see(sighting("u-green-1", "yard", now - 50_000, vec(0.05, 1, 0.05)), GREEN);
    ids.blue = await see(sighting("u-blue-1", "yard", now - 30_000, vec(0.05, 0.05, 1)), BLUE);
    ids.dark = await see(sighting("u-dark-1", "door", now - 10_000, vec(0.6, 0.6, 0.5)), BLACK);
    expect(new Set(Object.values(ids)).size).toBe(4);
  });
  afterAll(async () => h?.close());

  it("401 without a key, 403 for a viewer (audited as denied) and an operator's promotion, never for an admin", async () => {
    for (const [method, url, body] of ROUTES) {
      expect((await h.app.inject({ method, url })).statusCode, `${method} ${url}`).toBe(401);
      const viewer = await call(method, url, "viewer", body);
      expect(viewer.statusCode, `viewer ${method} ${url}`).toBe(403);
      expect(viewer.json()).toMatchObject({ error: "forbidden" });
      const promote = url.endsWith("/promote");
      if (promote)
        expect((await call(method, url, "operator", body)).statusCode, `operator ${url}`).toBe(403);
      for (const role of promote ? (["admin"] as const) : (["operator", "admin"] as const))
        expect([401, 403], `${role} ${method} ${url}`).not.toContain(
          (await call(method, url, role, body)).statusCode,
        );
    }
    const denied = (await h.apiStore.listAudit({ limit: 1000 })).items.filter(
      (e) => e.outcome === "denied" && e.action.startsWith("unknown."),
    );
    // Every route refused the viewer, and promotion the operator too.
    expect(denied).toHaveLength(ROUTES.length + 1);
    expect(denied.filter((e) => e.actor.role === "viewer")).toHaveLength(ROUTES.length);
    expect(denied.filter((e) => e.actor.role === "operator").map((e) => e.action)).toEqual([
      "unknown.promote",
    ]);
  });

  it("lists identities newest last-seen first, in pages, filtered by camera and time; refuses bad queries", async () => {
    const all = await call("GET", "/v1/unknowns?limit=50");
    expect(all.statusCode).toBe(200);
    expect(all.json().items.map((u: { id: string }) => u.id)).toEqual([
      ids.dark,
      ids.red,
      ids.blue,
      ids.green,
    ]);
    expect(all.json().nextCursor).toBeNull();
    const red = all.json().items[1];
    expect(red).toEqual({
      id: ids.red,
      name: null,
      modelId: "fake-model",
      firstSeen: now - 60_000,
      lastSeen: now - 20_000 + 4000,
      count: 3,
      cameras: ["door", "lobby"],
      bestSightings: expect.arrayContaining(["u-red-1", "u-red-2", "u-red-3"]),
      promotedTo: null,
    });

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await call("GET", `/v1/unknowns?limit=1${cursor ? `&cursor=${cursor}` : ""}`);
      expect(res.statusCode).toBe(200);
      expect(res.json().items).toHaveLength(1);
      seen.push(res.json().items[0].id);
      cursor = res.json().nextCursor;
    } while (cursor);
    expect(seen).toEqual([ids.dark, ids.red, ids.blue, ids.green]);

    const yard = await call("GET", "/v1/unknowns?camera=yard,lobby");
    expect(yard.json().items.map((u: { id: string }) => u.id)).toEqual([ids.red, ids.blue, ids.green]);
    const since = new Date(now - 35_000).toISOString();
    const until = new Date(now - 28_000).toISOString();
    const window = await call("GET", `/v1/unknowns?seenSince=${since}&seenUntil=${until}`);
    expect(window.json().items.map((u: { id: string }) => u.id)).toEqual([ids.red, ids.blue]);

    for (const bad of [
      "limit=0",
      "limit=5000",
      "cursor=nope",
      "seenSince=yesterday-ish",
      "seenSince=1h&seenUntil=2h",
    ]) {
      const res = await call("GET", `/v1/unknowns?${bad}`);
      expect(res.statusCode, bad).toBe(400);
      expect(res.json().error).toBe("invalid_request");
    }
    expect((await auditOf("unknown.list")).length).toBeGreaterThan(5);
  });

  it("shows one identity and pages its sightings (with crops); 404 for an unknown id", async () => {
    const one = await call("GET", `/v1/unknowns/${ids.red}`);
    expect(one.statusCode).toBe(200);
    expect(one.json()).toMatchObject({ id: ids.red, count: 3 });
    expect((await call("GET", "/v1/unknowns/unknown-000000000000")).statusCode).toBe(404);

    const first = await call("GET", `/v1/unknowns/${ids.red}/sightings?limit=2`);
    expect(first.statusCode).toBe(200);
    expect(first.json().items.map((s: { id: string }) => s.id)).toEqual(["u-red-3", "u-red-2"]);
    expect(first.json().items[0]).toMatchObject({
      unknownId: ids.red,
      cropUrl: "/v1/sightings/u-red-3/crop",
    });
    const next = await call(
      "GET",
      `/v1/unknowns/${ids.red}/sightings?limit=2&cursor=${first.json().nextCursor}`,
    );
    expect(next.json()).toMatchObject({ items: [{ id: "u-red-1" }], nextCursor: null });
    const crop = await call("GET", first.json().items[0].cropUrl);
    expect(crop.statusCode).toBe(200);
    expect(crop.headers["content-type"]).toBe("image/jpeg");
    expect((await call("GET", `/v1/unknowns/${ids.red}/sightings?limit=0`)).statusCode).toBe(400);
    expect((await call("GET", "/v1/unknowns/unknown-000000000000/sightings")).statusCode).toBe(404);

    // Sighting listings and search results carry the identity too; its id gives a timeline like a person's.
    const browse = await call("GET", "/v1/sightings?camera=lobby&limit=5");
    expect(browse.json().items[0]).toMatchObject({ id: "u-red-2", unknownId: ids.red, match: null });
    const timeline = await call("GET", `/v1/timeline?person=${ids.red}`);
    expect(timeline.statusCode).toBe(200);
    expect(timeline.json().sightings).toBe(3);
    expect(timeline.json().visits.map((v: { cameraId: string }) => v.cameraId)).toEqual([
      "door",
      "lobby",
      "door",
    ]);
  });

  it("names an identity and clears the name; refuses an empty or missing name", async () => {
    const named = await call("PUT", `/v1/unknowns/${ids.green}/name`, "operator", { name: "Gardener" });
    expect(named.statusCode).toBe(200);
    expect(named.json()).toMatchObject({ id: ids.green, name: "Gardener" });
    for (const body of [{ name: "" }, {}, { name: 7 }]) {
      const res = await call("PUT", `/v1/unknowns/${ids.green}/name`, "operator", body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
    }
    expect(
      (await call("PUT", "/v1/unknowns/unknown-000000000000/name", "operator", { name: "x" })).statusCode,
    ).toBe(404);
    const entries = await auditOf("unknown.name");
    expect(entries.find((e) => e.outcome === "ok" && e.target === ids.green)).toMatchObject({
      target: ids.green,
      outcome: "ok",
      summary: { name: "Gardener" },
      actor: { keyId: h.keyIds.operator },
    });
  });

  it("promotes an identity: its crops enrolled through the gate, the refusals listed, the promotion audited", async () => {
    const res = await call("POST", `/v1/unknowns/${ids.green}/promote`, "admin", {
      personId: "gardener",
      watchlist: "staff",
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ personId: "gardener", enrolled: ["u-green-1"], rejected: [] });
    expect((await call("GET", "/v1/people/gardener")).json()).toMatchObject({
      id: "gardener",
      name: "Gardener",
      watchlistId: "staff",
      faces: 1,
    });
    expect((await call("GET", `/v1/unknowns/${ids.green}`)).json().promotedTo).toBe("gardener");
    expect((await auditOf("unknown.promote"))[0]).toMatchObject({
      target: ids.green,
      outcome: "ok",
      status: 200,
      summary: { personId: "gardener", watchlist: "staff", enrolled: 1, rejected: 0 },
    });

    // A dark crop shows no face: nothing enrolled, 422 with the reason, no person stored.
    const refused = await call("POST", `/v1/unknowns/${ids.dark}/promote`, "admin", {});
    expect(refused.statusCode).toBe(422);
    expect(refused.json()).toMatchObject({
      error: "unprocessable",
      personId: ids.dark,
      enrolled: [],
      rejected: [{ sightingId: "u-dark-1", reason: "no face found" }],
    });
    expect((await call("GET", `/v1/people/${ids.dark}`)).statusCode).toBe(404);
    for (const body of [{ personId: "" }, { watchlist: 5 }, { name: "x".repeat(201) }])
      expect((await call("POST", `/v1/unknowns/${ids.dark}/promote`, "admin", body)).statusCode).toBe(400);
    expect((await call("POST", "/v1/unknowns/unknown-000000000000/promote", "admin", {})).statusCode).toBe(
      404,
    );
  });

  it("merges, splits and deletes, each audited; refuses what does not fit", async () => {
    // The blue stranger is really the red one seen badly: merge, then split it back off.
    const merged = await call("POST", `/v1/unknowns/${ids.red}/merge`, "operator", { from: ids.blue });
    expect(merged.statusCode).toBe(200);
    expect(merged.json()).toMatchObject({ id: ids.red, count: 4, cameras: ["door", "lobby", "yard"] });
    expect((await call("GET", `/v1/unknowns/${ids.blue}`)).statusCode).toBe(404);
    expect(
      (await call("POST", `/v1/unknowns/${ids.red}/merge`, "operator", { from: ids.red })).statusCode,
    ).toBe(400);
    expect(
      (await call("POST", `/v1/unknowns/${ids.red}/merge`, "operator", { from: ids.blue })).statusCode,
    ).toBe(404);
    expect((await call("POST", `/v1/unknowns/${ids.red}/merge`, "operator", {})).statusCode).toBe(400);
    expect((await auditOf("unknown.merge")).find((e) => e.outcome === "ok")).toMatchObject({
      target: ids.red,
      summary: { from: ids.blue },
    });

    const split = await call("POST", `/v1/unknowns/${ids.red}/split`, "operator", {
      sightingIds: ["u-blue-1"],
    });
    expect(split.statusCode).toBe(201);
    const created = split.json();
    expect(created).toMatchObject({ count: 1, cameras: ["yard"], bestSightings: ["u-blue-1"], name: null });
    expect((await call("GET", `/v1/unknowns/${ids.red}`)).json()).toMatchObject({ count: 3 });
    for (const body of [{ sightingIds: [] }, { sightingIds: ["u-green-1"] }, {}])
      expect((await call("POST", `/v1/unknowns/${ids.red}/split`, "operator", body)).statusCode).toBe(400);
    expect((await auditOf("unknown.split")).find((e) => e.outcome === "ok")).toMatchObject({
      target: ids.red,
      summary: { sightingIds: ["u-blue-1"], created: created.id },
    });

    const gone = await call("DELETE", `/v1/unknowns/${created.id}`);
    expect(gone.statusCode).toBe(204);
    expect((await call("DELETE", `/v1/unknowns/${created.id}`)).statusCode).toBe(404);
    expect((await call("GET", "/v1/sightings/u-blue-1")).json().unknownId).toBeNull();
    const deletions = (await auditOf("unknown.delete")).filter((e) => e.target === created.id);
    expect(deletions.map((e) => [e.outcome, e.status])).toEqual([
      ["failed", 404],
      ["ok", 204],
    ]);
  });

  it("is in the OpenAPI document with its role", async () => {
    const doc = (await h.app.inject({ url: "/openapi.json" })).json();
    expect(doc.components.schemas.UnknownIdentity.properties.bestSightings).toBeDefined();
    expect(doc.paths["/v1/unknowns/{id}/promote"].post.description).toContain("Role: **admin**");
    expect(doc.paths["/v1/unknowns/{id}/merge"].post.description).toContain("Role: **operator**");
  });
});
