import Database from "better-sqlite3";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FrameContract, Topics } from "../lib/contracts/index.ts";
import type { Role } from "../lib/store/key-store.ts";
import { parseKey } from "../lib/api/keys.ts";
import {
  alertMessage,
  apiHarness,
  BLACK,
  BLUE,
  form,
  GREEN,
  MODEL,
  photo,
  publishAlerts,
  publishStatus,
  RED,
  sighting,
  vec,
  type Harness,
} from "./api-harness.ts";

const now = Date.now();
type Method = "GET" | "POST" | "PUT" | "DELETE";

/** Every route with the least role it needs; the test below checks this covers the whole OpenAPI document. */
const ROUTES: [Method, string, Role][] = [
  ["GET", "/v1/me", "viewer"],
  ["GET", "/v1/cameras", "viewer"],
  ["GET", "/v1/cameras/cam-1", "viewer"],
  ["GET", "/v1/cameras/cam-1/snapshot", "viewer"],
  ["GET", "/v1/alerts", "viewer"],
  ["GET", "/v1/alerts/stream", "viewer"],
  ["GET", "/v1/alerts/a-1", "viewer"],
  ["GET", "/v1/alerts/a-1/crop", "viewer"],
  ["GET", "/v1/alerts/a-1/clip", "viewer"],
  ["POST", "/v1/alerts/a-1/ack", "operator"],
  ["GET", "/v1/sightings", "operator"],
  ["POST", "/v1/sightings/search", "operator"],
  ["GET", "/v1/sightings/s-1", "operator"],
  ["GET", "/v1/sightings/s-1/crop", "operator"],
  ["GET", "/v1/sightings/s-1/clip", "operator"],
  ["PUT", "/v1/follows/nobody", "operator"],
  ["DELETE", "/v1/follows/nobody", "operator"],
  ["GET", "/v1/follows", "operator"],
  ["GET", "/v1/follows/nobody", "operator"],
  ["POST", "/v1/exports", "admin"],
  ["GET", "/v1/exports/0123456789abcdef", "admin"],
  ["GET", "/v1/exports/0123456789abcdef/files/x.mp4", "admin"],
  ["DELETE", "/v1/exports/0123456789abcdef", "admin"],
  ["GET", "/v1/timeline?person=ann", "operator"],
  ["POST", "/v1/timeline", "operator"],
  ["GET", "/v1/watchlists", "operator"],
  ["GET", "/v1/watchlists/default", "operator"],
  ["PUT", "/v1/watchlists/default/threshold", "admin"],
  ["GET", "/v1/people", "operator"],
  ["POST", "/v1/people", "admin"],
  ["GET", "/v1/people/nobody", "operator"],
  ["PUT", "/v1/people/nobody", "admin"],
  ["DELETE", "/v1/people/nobody", "admin"],
  ["POST", "/v1/people/nobody/photos", "admin"],
  ["DELETE", "/v1/people/nobody/photos/x.jpg", "admin"],
  ["GET", "/v1/people/nobody/photos/x.jpg/crop", "operator"],
  ["GET", "/v1/people/nobody/exclusions", "operator"],
  ["POST", "/v1/people/nobody/exclusions", "admin"],
  ["DELETE", "/v1/people/nobody/exclusions/e-1", "admin"],
  ["POST", "/v1/exclusions", "admin"],
  ["GET", "/v1/unknowns", "operator"],
  ["GET", "/v1/unknowns/nobody", "operator"],
  ["GET", "/v1/unknowns/nobody/sightings", "operator"],
  ["PUT", "/v1/unknowns/nobody/name", "operator"],
  ["POST", "/v1/unknowns/nobody/promote", "admin"],
  ["POST", "/v1/unknowns/nobody/merge", "operator"],
  ["POST", "/v1/unknowns/nobody/split", "operator"],
  ["DELETE", "/v1/unknowns/nobody", "operator"],
  ["GET", "/v1/keys", "admin"],
  ["POST", "/v1/keys", "admin"],
  ["DELETE", "/v1/keys/000000000000", "admin"],
  ["GET", "/v1/audit", "admin"],
  ["GET", "/v1/audit/verify", "admin"],
  ["GET", "/v1/webhooks", "admin"],
  ["POST", "/v1/webhooks", "admin"],
  ["DELETE", "/v1/webhooks/wh_x", "admin"],
  ["GET", "/v1/webhooks/wh_x/deliveries", "admin"],
  ["POST", "/v1/webhooks/wh_x/deliveries/d/retry", "admin"],
];
const RANK: Role[] = ["viewer", "operator", "admin"];

describe("operator API over inject, on the embedded store", () => {
  let h: Harness;
  const get = (url: string, role: Role = "admin") =>
    h.app.inject({ method: "GET", url, headers: h.auth(role) });
  const send = async (
    method: Method,
    url: string,
    role: Role,
    body?: { fields: Record<string, string | string[]>; files: Parameters<typeof form>[1] } | object,
  ) => {
    if (body && "files" in body) {
      const f = await form(body.fields as Record<string, string>, body.files as Parameters<typeof form>[1]);
      return h.app.inject({ method, url, payload: f.payload, headers: { ...h.auth(role), ...f.headers } });
    }
    return h.app.inject({ method, url, headers: h.auth(role), ...(body ? { payload: body } : {}) });
  };
  const auditOf = async (action: string) => (await h.apiStore.listAudit({ limit: 100, action })).items;

  beforeAll(async () => {
    h = await apiHarness({
      cameras: [{ id: "door", url: "rtsp://10.0.0.1/door" }],
      "api.upload.maxBytes": 200_000,
      "api.upload.maxPixels": 4_000_000,
      // The suite makes hundreds of requests a second; rate limits have a test of their own.
      "api.rateLimit.perMinute": 1_000_000,
      "api.rateLimit.burst": 100_000,
    });
    await h.store.addSightings([
      {
        ...sighting("s-red-door", "door", now - 50_000, vec(1, 0.05, 0.05), {
          personId: "ann",
          name: "Ann",
          score: 0.9,
        }),
        box: { x: 300, y: 120, width: 64, height: 80 },
        boxTs: now - 49_000,
      },
      sighting("s-red-lobby", "lobby", now - 30_000, vec(1, 0.08, 0.05), {
        personId: "ann",
        name: "Ann",
        score: 0.8,
      }),
      sighting("s-red-door-2", "door", now - 10_000, vec(1, 0.05, 0.1), {
        personId: "ann",
        name: "Ann",
        score: 0.85,
      }),
      sighting("s-blue", "door", now - 40_000, vec(0.05, 0.05, 1)),
      sighting("s-green", "yard", now - 20_000, vec(0.05, 1, 0.05)),
    ]);
  });
  afterAll(async () => h?.close());

  describe("public routes", () => {
    it("/healthz, /readyz and /metrics answer without a key", async () => {
      expect((await h.app.inject({ url: "/healthz" })).body).toBe("ok\n");
      const ready = await h.app.inject({ url: "/readyz" });
      expect(ready.statusCode).toBe(200);
      expect(ready.json()).toEqual({ ready: true, checks: { bus: true } });
      await get("/v1/cameras", "viewer");
      const metrics = await h.app.inject({ url: "/metrics" });
      expect(metrics.statusCode).toBe(200);
      expect(metrics.body).toMatch(/vigil_api_requests_total\{[^}]*route="\/v1\/cameras"[^}]*status="200"/);
    });

    it("/openapi.json is generated from the zod schemas: every route, its role, multipart bodies", async () => {
      const res = await h.app.inject({ url: "/openapi.json" });
      expect(res.statusCode).toBe(200);
      const doc = res.json();
      expect(doc.openapi).toBe("3.0.3");
      expect(doc.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
      expect(doc.components.schemas.Alert.properties.cropUrl).toBeDefined();
      const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(
        ([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`),
      );
      const tested = ROUTES.map(
        ([m, url]) =>
          `${m} ${url.split("?")[0]!.replace(/\/(cam-1|a-1|s-1|nobody|default|x\.jpg|x\.mp4|e-1|000000000000|0123456789abcdef|wh_x|d)(?=\/|$)/g, "/{}")}`,
      );
      const normal = (s: string) => s.replace(/\{[^}]+\}/g, "{}");
      expect(new Set(documented.map(normal))).toEqual(new Set(tested.map(normal)));
      const enrol = doc.paths["/v1/people"].post;
      expect(enrol.description).toContain("Role: **admin**");
      expect(enrol.requestBody.content["multipart/form-data"].schema.properties.photo).toMatchObject({
        type: "array",
        items: { type: "string", format: "binary" },
      });
      expect(doc.paths["/v1/alerts"].get.parameters.map((p: { name: string }) => p.name)).toEqual(
        expect.arrayContaining(["camera", "person", "since", "until", "acknowledged", "limit", "cursor"]),
      );
    });
  });

  describe("access control", () => {
    it("401 without a key, with a malformed or unknown key, and with a revoked key", async () => {
      for (const [method, url] of ROUTES) {
        const res = await h.app.inject({ method, url });
        expect(res.statusCode, `${method} ${url}`).toBe(401);
        expect(res.headers["www-authenticate"]).toContain("Bearer");
      }
      const bad = await h.app.inject({ url: "/v1/alerts", headers: { authorization: "Bearer nope" } });
      expect(bad.statusCode).toBe(401);
      const unknown = await h.app.inject({
        url: "/v1/alerts",
        headers: { authorization: `Bearer vgl_${"0".repeat(12)}_${"A".repeat(43)}` },
      });
      expect(unknown.statusCode).toBe(401);
      const revoked = await h.app.inject({ url: "/v1/alerts", headers: h.auth("revoked") });
      expect(revoked.statusCode).toBe(401);
      expect(revoked.json().message).toContain("revoked");
      // The key may also come in X-API-Key.
      const header = await h.app.inject({ url: "/v1/alerts", headers: { "x-api-key": h.keys.viewer } });
      expect(header.statusCode).toBe(200);
    });

    it("403 for every role below a route's, never for its own role or above; each refusal is audited", async () => {
      for (const [method, url, least] of ROUTES) {
        for (const role of RANK) {
          // The stream never ends under inject; its refusals are checked, its success in api-stream.test.ts.
          if (url === "/v1/alerts/stream" && RANK.indexOf(role) >= RANK.indexOf(least)) continue;
          const res = await h.app.inject({ method, url, headers: h.auth(role) });
          if (RANK.indexOf(role) < RANK.indexOf(least)) {
            expect(res.statusCode, `${role} ${method} ${url}`).toBe(403);
            expect(res.json()).toMatchObject({ error: "forbidden" });
          } else expect([401, 403], `${role} ${method} ${url}`).not.toContain(res.statusCode);
        }
      }
      const denied = (await h.apiStore.listAudit({ limit: 1000 })).items.filter(
        (e) => e.outcome === "denied",
      );
      expect(denied.length).toBeGreaterThan(20);
      expect(denied.find((e) => e.action === "search")).toMatchObject({
        actor: { keyId: h.keyIds.viewer, name: "viewer-key", role: "viewer" },
        status: 403,
      });
    });
  });

  describe("cameras", () => {
    it("lists configured cameras and those ingest reports, with the newest state and counters", async () => {
      await publishStatus(h.bus, { cameraId: "door", state: "connecting", ts: now - 5000 });
      await publishStatus(h.bus, { cameraId: "door", state: "live", ts: now - 1000, framesIn: 120 });
      // An older record arriving late does not win.
      await publishStatus(h.bus, { cameraId: "door", state: "backoff", ts: now - 3000 });
      await publishStatus(h.bus, {
        cameraId: "yard",
        state: "error",
        ts: now,
        lastError: "401 Unauthorized",
      });
      await publishStatus(h.bus, {
        cameraId: "lobby-file",
        state: "live",
        ts: now,
        recording: {
          on: false,
          reason: "a file, not a live camera: clips are recorded from live cameras only",
        },
      });
      await h.bus.drain();
      const res = await get("/v1/cameras", "viewer");
      expect(res.statusCode).toBe(200);
      expect(res.json().items).toEqual([
        {
          id: "door",
          state: "live",
          ts: now - 1000,
          lastError: null,
          framesIn: 120,
          framesDropped: 1,
          framesUndecodable: 0,
          reconnects: 2,
          configured: true,
          snapshotTs: null,
          recording: null,
        },
        // Asked to record, and why it cannot: its alerts come without video.
        expect.objectContaining({
          id: "lobby-file",
          recording: { on: false, reason: expect.stringMatching(/^a file, not a live camera/) },
        }),
        expect.objectContaining({
          id: "yard",
          state: "error",
          lastError: "401 Unauthorized",
          configured: false,
        }),
      ]);
      expect((await get("/v1/cameras/yard", "viewer")).json().state).toBe("error");
      expect((await get("/v1/cameras/nowhere", "viewer")).statusCode).toBe(404);
      const snap = await get("/v1/cameras/door/snapshot", "viewer");
      expect(snap.statusCode).toBe(404);
      expect(snap.json().message).toContain("api.snapshots");
    });
  });

  describe("alerts", () => {
    beforeAll(async () => {
      await publishAlerts(h.bus, [
        alertMessage("a-1", "door", "ann", now - 50_000, "vip"),
        alertMessage("a-2", "lobby", "ann", now - 40_000, "vip"),
        alertMessage("a-3", "door", "bo", now - 30_000),
        alertMessage("a-4", "door", "ann", now - 20_000, "vip"),
        alertMessage("a-5", "yard", "cy", now - 10_000),
      ]);
      await h.bus.drain();
    });

    it("stores what vigil.alerts carries and lists it newest first, in pages that neither skip nor repeat", async () => {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const res = await get(`/v1/alerts?limit=2${cursor ? `&cursor=${cursor}` : ""}`, "viewer");
        expect(res.statusCode).toBe(200);
        const body = res.json();
        seen.push(...body.items.map((a: { id: string }) => a.id));
        cursor = body.nextCursor;
        pages++;
      } while (cursor);
      expect(pages).toBe(3);
      expect(seen).toEqual(["a-5", "a-4", "a-3", "a-2", "a-1"]);
    });

    it("filters by camera, person, watchlist, time and acknowledgement", async () => {
      const ids = async (q: string) =>
        (await get(`/v1/alerts?${q}`, "viewer")).json().items.map((a: { id: string }) => a.id);
      expect(await ids("camera=door")).toEqual(["a-4", "a-3", "a-1"]);
      expect(await ids("camera=door,yard")).toEqual(["a-5", "a-4", "a-3", "a-1"]);
      expect(await ids("camera=lobby&camera=yard")).toEqual(["a-5", "a-2"]);
      expect(await ids("person=ann&watchlist=vip")).toEqual(["a-4", "a-2", "a-1"]);
      expect(await ids(`since=${now - 35_000}&until=${now - 15_000}`)).toEqual(["a-4", "a-3"]);
      expect(await ids(`since=${new Date(now - 25_000).toISOString()}`)).toEqual(["a-5", "a-4"]);
      expect(await ids("acknowledged=true")).toEqual([]);
    });

    it("answers one alert with its crop URL, and the crop as JPEG", async () => {
      const res = await get("/v1/alerts/a-3", "viewer");
      expect(res.json()).toMatchObject({
        id: "a-3",
        personId: "bo",
        personName: "BO",
        cameraId: "door",
        acknowledged: null,
        cropUrl: "/v1/alerts/a-3/crop",
      });
      const crop = await get("/v1/alerts/a-3/crop", "viewer");
      expect(crop.statusCode).toBe(200);
      expect(crop.headers["content-type"]).toBe("image/jpeg");
      expect([...crop.rawPayload]).toEqual([0xff, 0xd8, 0xff, 0xe0]);
      expect((await get("/v1/alerts/nope", "viewer")).statusCode).toBe(404);
      expect((await get("/v1/alerts/nope/crop", "viewer")).statusCode).toBe(404);
    });

    it("acknowledges as the key's name; the first acknowledgement stands", async () => {
      const first = await send("POST", "/v1/alerts/a-2/ack", "operator", { note: "guard sent" });
      expect(first.statusCode).toBe(200);
      expect(first.json().acknowledged).toMatchObject({ by: "operator-key", note: "guard sent" });
      const again = await send("POST", "/v1/alerts/a-2/ack", "admin", { note: "me too" });
      expect(again.json().acknowledged).toMatchObject({ by: "operator-key", note: "guard sent" });
      const open = (await get("/v1/alerts?acknowledged=false", "viewer"))
        .json()
        .items.map((a: { id: string }) => a.id);
      expect(open).toEqual(["a-5", "a-4", "a-3", "a-1"]);
      // A bare acknowledgement, no body at all, as a one-button client sends it.
      const bare = await send("POST", "/v1/alerts/a-3/ack", "operator");
      expect(bare.statusCode).toBe(200);
      expect(bare.json().acknowledged).toMatchObject({ by: "operator-key", note: null });
      expect((await send("POST", "/v1/alerts/nope/ack", "operator", {})).statusCode).toBe(404);
      expect((await auditOf("alert.acknowledge"))[0]).toMatchObject({
        target: "nope",
        outcome: "failed",
        status: 404,
      });
    });

    it("refuses bad filters and paging with 400 and the reason", async () => {
      for (const q of [
        "limit=0",
        "limit=1001",
        "limit=abc",
        "since=yesterday-ish",
        "acknowledged=maybe",
        "cursor=%21%21",
      ]) {
        const res = await get(`/v1/alerts?${q}`, "viewer");
        expect(res.statusCode, q).toBe(400);
        expect(res.json().error).toBe("invalid_request");
      }
      const since = await get(`/v1/alerts?since=${now}&until=${now - 1000}`, "viewer");
      expect(since.statusCode).toBe(400);
      expect(since.json().message).toContain("since is after until");
      expect((await get("/v1/alerts?since=garbage", "viewer")).json().issues[0].path).toContain("since");
    });
  });

  describe("watchlists and people", () => {
    it("enrols from uploaded photos with a reason for each refused one", async () => {
      const res = await send("POST", "/v1/people", "admin", {
        fields: { id: "ann", name: "Ann Example", watchlist: "vip" },
        files: [
          { name: "ann-1.jpg", bytes: await photo(RED) },
          { name: "dark.jpg", bytes: await photo(BLACK) },
        ],
      });
      expect(res.statusCode).toBe(201);
      expect(res.json()).toEqual({
        person: { id: "ann", name: "Ann Example", watchlistId: "vip", faces: 1 },
        photos: [
          { file: "ann-1.jpg", ok: true, faceId: "ann:ann-1.jpg" },
          { file: "dark.jpg", ok: false, reason: "no face found" },
        ],
      });
      const more = await send("POST", "/v1/people/ann/photos", "admin", {
        fields: {},
        files: [{ name: "ann-2.png", bytes: await photo(RED, { format: "png" }), type: "image/png" }],
      });
      expect(more.statusCode).toBe(200);
      expect(more.json().person.faces).toBe(2);
      const details = (await get("/v1/people/ann", "operator")).json();
      expect(details.photos.map((p: { faceId: string }) => p.faceId).sort()).toEqual([
        "ann:ann-1.jpg",
        "ann:ann-2.png",
      ]);
      const entry = (await auditOf("person.enrol")).find((e) => e.target === "ann" && e.status === 201)!;
      expect(entry.actor.name).toBe("admin-key");
      expect(entry.summary).toMatchObject({ name: "Ann Example", watchlist: "vip", enrolled: 1 });
      expect((entry.summary.photos as { name: string; sha256: string }[])[0]).toMatchObject({
        name: "ann-1.jpg",
        size: "64x48",
        sha256: expect.stringMatching(/^[0-9a-f]{16}$/),
      });
      // The audit log names the photo; it never holds it.
      expect(JSON.stringify(entry.summary).length).toBeLessThan(600);
    });

    it("keeps each enrolled photo's aligned face: its cropUrl, the JPEG (operators, audited), 404 without one", async () => {
      type PhotoOut = { faceId: string; cropUrl: string | null };
      const photos = async () => (await get("/v1/people/ann", "operator")).json().photos as PhotoOut[];
      const first = (await photos()).find((p) => p.faceId === "ann:ann-1.jpg")!;
      expect(first.cropUrl).toBe("/v1/people/ann/photos/ann-1.jpg/crop");
      const crop = await get(first.cropUrl!, "operator");
      expect(crop.statusCode).toBe(200);
      expect(crop.headers["content-type"]).toBe("image/jpeg");
      // The harness's "aligned face" is the whole 64×48 picture it was given.
      expect(await sharp(crop.rawPayload).metadata()).toMatchObject({
        format: "jpeg",
        width: 64,
        height: 48,
      });
      expect((await get(first.cropUrl!, "viewer")).statusCode).toBe(403);
      expect((await h.app.inject({ url: first.cropUrl! })).statusCode).toBe(401);
      expect((await auditOf("export.photo-crop")).find((e) => e.status === 200)).toMatchObject({
        target: "ann:ann-1.jpg",
        outcome: "ok",
        actor: { name: "operator-key" },
      });

      // A photo enrolled before crops were kept: listed without a crop URL, and its crop is a 404.
      await h.store.addFace({
        faceId: "ann:old.jpg",
        personId: "ann",
        modelId: MODEL,
        vector: vec(1, 0, 0),
        source: "old.jpg",
      });
      expect((await photos()).find((p) => p.faceId === "ann:old.jpg")!.cropUrl).toBeNull();
      const none = await get("/v1/people/ann/photos/old.jpg/crop", "operator");
      expect(none.statusCode).toBe(404);
      expect(none.json().message).toContain("enrolled before crops were kept");
      expect((await get("/v1/people/ann/photos/nope.jpg/crop", "operator")).statusCode).toBe(404);
      expect((await get("/v1/people/bo/photos/ann-1.jpg/crop", "operator")).statusCode).toBe(404);

      // Alerts carry the crop of the person's first enrolled photo that has one, for an operator; a viewer
      // (who may not read people) gets null, as does an alert for someone without crops.
      expect((await get("/v1/alerts/a-1", "operator")).json().personCropUrl).toBe(first.cropUrl);
      expect((await get("/v1/alerts/a-1", "viewer")).json().personCropUrl).toBeNull();
      const listed = (await get("/v1/alerts?person=ann", "operator")).json().items as {
        personCropUrl: string | null;
      }[];
      expect(listed.length).toBe(3);
      expect(listed.every((a) => a.personCropUrl === first.cropUrl)).toBe(true);
      expect((await get("/v1/alerts/a-3", "admin")).json().personCropUrl).toBeNull();
      // An alert that names the enrolled photo it matched shows that one; one whose photo has no crop, the first.
      const a1 = (await h.store.getAlert("a-1"))!;
      await h.store.addAlerts([
        { ...a1, id: "a-matched", crop: Uint8Array.of(0xff, 0xd8), matchedFaceId: "ann:ann-2.png" },
        { ...a1, id: "a-no-crop", crop: Uint8Array.of(0xff, 0xd8), matchedFaceId: "ann:old.jpg" },
      ]);
      const matched = (await get("/v1/alerts/a-matched", "operator")).json();
      expect(matched).toMatchObject({
        matchedFaceId: "ann:ann-2.png",
        personCropUrl: "/v1/people/ann/photos/ann-2.png/crop",
      });
      expect((await get(matched.personCropUrl, "operator")).statusCode).toBe(200);
      expect((await get("/v1/alerts/a-no-crop", "operator")).json().personCropUrl).toBe(first.cropUrl);
      // A viewer is not told which photo either.
      expect((await get("/v1/alerts/a-matched", "viewer")).json()).toMatchObject({
        matchedFaceId: null,
        personCropUrl: null,
      });
      expect(await h.store.removeFace("ann:old.jpg")).toBe(true);
    });

    it("422 and nothing stored when no photo of a new person is usable", async () => {
      const res = await send("POST", "/v1/people", "admin", {
        fields: { id: "dee" },
        files: [{ name: "dark.jpg", bytes: await photo(BLACK) }],
      });
      expect(res.statusCode).toBe(422);
      expect(res.json()).toMatchObject({
        error: "unprocessable",
        photos: [{ file: "dark.jpg", ok: false, reason: "no face found" }],
      });
      expect(await h.store.getPerson("dee")).toBeUndefined();
      expect((await get("/v1/people/dee", "operator")).statusCode).toBe(404);
    });

    it("validates fields: a missing id, a bad id, photos for someone unknown", async () => {
      const noId = await send("POST", "/v1/people", "admin", {
        fields: {},
        files: [{ name: "a.jpg", bytes: await photo(RED) }],
      });
      expect(noId.statusCode).toBe(400);
      expect(noId.json().issues[0].path).toBe("id");
      const badId = await send("POST", "/v1/people", "admin", { fields: { id: " padded " }, files: [] });
      expect(badId.statusCode).toBe(400);
      const unknown = await send("POST", "/v1/people/zed/photos", "admin", {
        fields: {},
        files: [{ name: "z.jpg", bytes: await photo(BLUE) }],
      });
      expect(unknown.statusCode).toBe(404);
      expect(await h.store.getPerson("zed")).toBeUndefined();
      const json = await send("POST", "/v1/people", "admin", { id: "x" });
      expect(json.statusCode).toBe(400);
    });

    it("adds and renames people without photos, lists and filters them, removes a photo and a person", async () => {
      const add = await send("PUT", "/v1/people/bo", "admin", { name: "Bo", watchlistId: "staff" });
      expect(add.statusCode).toBe(201);
      expect(add.json().person).toEqual({ id: "bo", name: "Bo", watchlistId: "staff", faces: 0 });
      const rename = await send("PUT", "/v1/people/bo", "admin", { name: "Bo Builder" });
      expect(rename.statusCode).toBe(200);
      expect(rename.json().person).toMatchObject({ name: "Bo Builder", watchlistId: "staff" });
      expect((await get("/v1/people?watchlist=staff", "operator")).json().items).toEqual([
        { id: "bo", name: "Bo Builder", watchlistId: "staff", faces: 0 },
      ]);
      expect(
        (await get("/v1/people", "operator"))
          .json()
          .items.map((p: { id: string }) => p.id)
          .sort(),
      ).toEqual(["ann", "bo"]);
      expect((await send("DELETE", "/v1/people/ann/photos/ann-2.png", "admin")).statusCode).toBe(204);
      expect((await get("/v1/people/ann", "operator")).json().faces).toBe(1);
      expect((await send("DELETE", "/v1/people/ann/photos/ann-2.png", "admin")).statusCode).toBe(404);
      expect((await send("DELETE", "/v1/people/bo", "admin")).statusCode).toBe(204);
      expect((await get("/v1/people/bo", "operator")).statusCode).toBe(404);
      expect((await auditOf("person.remove"))[0]).toMatchObject({ target: "bo", outcome: "ok", status: 204 });
    });

    it("sets and clears a watchlist's threshold, refusing values outside [-1, 1]", async () => {
      const set = await send("PUT", "/v1/watchlists/vip/threshold", "admin", { threshold: 0.62 });
      expect(set.json()).toEqual({ id: "vip", threshold: 0.62, people: 1 });
      expect((await get("/v1/watchlists", "operator")).json().items).toContainEqual({
        id: "vip",
        threshold: 0.62,
        people: 1,
      });
      expect((await send("PUT", "/v1/watchlists/vip/threshold", "admin", { threshold: 2 })).statusCode).toBe(
        400,
      );
      expect((await send("PUT", "/v1/watchlists/vip/threshold", "admin", {})).statusCode).toBe(400);
      const clear = await send("PUT", "/v1/watchlists/vip/threshold", "admin", { threshold: null });
      expect(clear.json()).toEqual({ id: "vip", threshold: null, people: 1 });
      expect((await get("/v1/watchlists/empty", "operator")).json()).toEqual({
        id: "empty",
        threshold: null,
        people: 0,
      });
    });

    it('says "this is not Ann" from a photo, an alert or a sighting; lists and removes exclusions', async () => {
      const fromPhoto = await send("POST", "/v1/people/ann/exclusions", "admin", {
        fields: { note: "her sister" },
        files: [{ name: "sister.jpg", bytes: await photo(GREEN) }],
      });
      expect(fromPhoto.statusCode).toBe(201);
      expect(fromPhoto.json()).toMatchObject({ personId: "ann", note: "her sister" });
      // a-1 was an alert for ann; stored from the bus without a vector, its crop is embedded again.
      const crop = await photo(BLUE);
      await h.store.addAlerts([
        {
          ...(await h.store.getAlert("a-1"))!,
          id: "a-crop",
          crop: new Uint8Array(crop),
          vector: null,
        },
      ]);
      const fromAlert = await send("POST", "/v1/exclusions", "admin", { alertId: "a-crop" });
      expect(fromAlert.statusCode).toBe(201);
      expect(fromAlert.json()).toMatchObject({ personId: "ann", note: "alert a-crop" });
      const fromSighting = await send("POST", "/v1/exclusions", "admin", {
        sightingId: "s-red-lobby",
        note: "not her",
      });
      expect(fromSighting.statusCode).toBe(201);
      const strangerSighting = await send("POST", "/v1/exclusions", "admin", { sightingId: "s-blue" });
      expect(strangerSighting.statusCode).toBe(400);
      expect(strangerSighting.json().message).toContain("matched nobody");
      expect(
        (await send("POST", "/v1/exclusions", "admin", { alertId: "a-1", sightingId: "s-blue" })).statusCode,
      ).toBe(400);
      expect((await send("POST", "/v1/exclusions", "admin", { alertId: "nope" })).statusCode).toBe(404);
      const list = (await get("/v1/people/ann/exclusions", "operator")).json().items;
      expect(list).toHaveLength(3);
      const removed = await send(
        "DELETE",
        `/v1/people/ann/exclusions/${encodeURIComponent(list[0].id)}`,
        "admin",
      );
      expect(removed.statusCode).toBe(204);
      expect((await get("/v1/people/ann/exclusions", "operator")).json().items).toHaveLength(2);
      expect((await auditOf("exclusion")).filter((e) => e.outcome === "ok")).toHaveLength(4);
    });
  });

  describe("sightings, search and timelines", () => {
    it("searches by an uploaded photo, best first, with camera and time filters and offset paging", async () => {
      const search = (fields: Record<string, string | string[]>) =>
        photo(RED).then((bytes) =>
          send("POST", "/v1/sightings/search", "operator", {
            fields,
            files: [{ name: "suspect.jpg", bytes }],
          }),
        );
      const res = await search({ limit: "2" });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body.threshold).toBe(0.5);
      expect(body.hits).toHaveLength(2);
      expect(body.hits.every((x: { samePerson: boolean }) => x.samePerson)).toBe(true);
      expect(body.hits[0].sighting.cropUrl).toMatch(/^\/v1\/sightings\/s-red/);
      expect(body.nextOffset).toBe(2);
      const next = (await search({ limit: "2", offset: "2" })).json();
      expect(next.hits[0].sighting.id).toMatch(/^s-red/);
      expect(next.hits[1].samePerson).toBe(false);
      const ids = [...body.hits, next.hits[0]].map((x: { sighting: { id: string } }) => x.sighting.id).sort();
      expect(ids).toEqual(["s-red-door", "s-red-door-2", "s-red-lobby"]);
      const door = (await search({ camera: ["door", "yard"], since: String(now - 45_000) })).json();
      const doorIds = door.hits.map((x: { sighting: { id: string } }) => x.sighting.id);
      expect(doorIds[0]).toBe("s-red-door-2");
      expect(doorIds.sort()).toEqual(["s-blue", "s-green", "s-red-door-2"]);
      const entry = (await auditOf("search"))[0]!;
      expect(entry).toMatchObject({ actor: { name: "operator-key" }, outcome: "ok" });
      expect(entry.summary).toMatchObject({ cameras: ["door", "yard"], since: now - 45_000, hits: 3 });
      expect((entry.summary.photo as { name: string }).name).toBe("suspect.jpg");
    });

    it("refuses a search without a photo, with two photos, or with a photo that shows no face", async () => {
      const none = await send("POST", "/v1/sightings/search", "operator", {
        fields: { limit: "5" },
        files: [],
      });
      expect(none.statusCode).toBe(400);
      const two = await send("POST", "/v1/sightings/search", "operator", {
        fields: {},
        files: [
          { name: "a.jpg", bytes: await photo(RED) },
          { name: "b.jpg", bytes: await photo(RED) },
        ],
      });
      expect(two.statusCode).toBe(413);
      const dark = await send("POST", "/v1/sightings/search", "operator", {
        fields: {},
        files: [{ name: "dark.jpg", bytes: await photo(BLACK) }],
      });
      expect(dark.statusCode).toBe(400);
      expect(dark.json().message).toBe("dark.jpg: no face found");
      const badLimit = await send("POST", "/v1/sightings/search", "operator", {
        fields: { limit: "0" },
        files: [{ name: "a.jpg", bytes: await photo(RED) }],
      });
      expect(badLimit.statusCode).toBe(400);
      expect(badLimit.json().issues[0].path).toBe("limit");
    });

    it("browses sightings by camera, person and time in pages, with crops", async () => {
      const first = (await get("/v1/sightings?limit=2", "operator")).json();
      expect(first.items.map((s: { id: string }) => s.id)).toEqual(["s-red-door-2", "s-green"]);
      const second = (await get(`/v1/sightings?limit=2&cursor=${first.nextCursor}`, "operator")).json();
      expect(second.items.map((s: { id: string }) => s.id)).toEqual(["s-red-lobby", "s-blue"]);
      const ann = (await get("/v1/sightings?person=ann&camera=door", "operator")).json();
      expect(ann.items.map((s: { id: string }) => s.id)).toEqual(["s-red-door-2", "s-red-door"]);
      const blue = (await get("/v1/sightings/s-blue", "operator")).json();
      expect(blue).toMatchObject({ id: "s-blue", match: null, cropUrl: "/v1/sightings/s-blue/crop" });
      // The best face's box and time where the sighting has them (it was stored with them), else neither.
      expect(blue).not.toHaveProperty("box");
      expect(blue).not.toHaveProperty("boxTs");
      expect((await get("/v1/sightings/s-red-door", "operator")).json()).toMatchObject({
        box: { x: 300, y: 120, width: 64, height: 80 },
        boxTs: expect.any(Number),
      });
      expect(ann.items[1]).toMatchObject({ id: "s-red-door", box: { x: 300 } });
      const crop = await get("/v1/sightings/s-blue/crop", "operator");
      expect(crop.headers["content-type"]).toBe("image/jpeg");
      expect((await auditOf("export"))[0]).toMatchObject({
        action: "export.sighting-crop",
        target: "s-blue",
      });
      expect((await get("/v1/sightings/nope", "operator")).statusCode).toBe(404);
      expect((await get("/v1/sightings?limit=2&cursor=bm9wZQ", "operator")).statusCode).toBe(400);
    });

    it("builds timelines by person id and by photo", async () => {
      const byId = await get("/v1/timeline?person=ann&mergeGapS=5", "operator");
      expect(byId.statusCode).toBe(200);
      expect(byId.json().visits.map((v: { cameraId: string }) => v.cameraId)).toEqual([
        "door",
        "lobby",
        "door",
      ]);
      const byPhoto = await send("POST", "/v1/timeline", "operator", {
        fields: { mergeGapS: "5" },
        files: [{ name: "who.jpg", bytes: await photo(RED) }],
      });
      expect(byPhoto.statusCode).toBe(200);
      expect(byPhoto.json()).toMatchObject({ sightings: 3, threshold: 0.5 });
      expect((await get("/v1/timeline", "operator")).statusCode).toBe(400);
      expect((await get("/v1/timeline?person=ann&mergeGapS=-1", "operator")).statusCode).toBe(400);
      expect((await auditOf("timeline")).map((e) => e.action)).toEqual(
        expect.arrayContaining(["timeline.person", "timeline.photo"]),
      );
    });
  });

  describe("keys and the audit log", () => {
    it("creates a key that works at once, lists keys without secrets, revokes one", async () => {
      const created = await send("POST", "/v1/keys", "admin", { name: "console", role: "viewer" });
      expect(created.statusCode).toBe(201);
      const { key, record } = created.json();
      expect(key).toMatch(/^vgl_[0-9a-f]{12}_/);
      expect(
        (await h.app.inject({ url: "/v1/alerts", headers: { authorization: `Bearer ${key}` } })).statusCode,
      ).toBe(200);
      const list = await get("/v1/keys");
      // The whole secret: base64url has "_" in it, so key.split("_")[2] can be a fragment found anywhere.
      expect(list.body).not.toContain(parseKey(key)!.secret);
      expect(list.json().items.find((k: { id: string }) => k.id === record.id)).toMatchObject({
        name: "console",
        role: "viewer",
        revokedTs: null,
      });
      expect((await send("POST", "/v1/keys", "admin", { name: "x", role: "root" })).statusCode).toBe(400);
      expect((await send("DELETE", `/v1/keys/${record.id}`, "admin")).json().revokedTs).toEqual(
        expect.any(Number),
      );
      expect(
        (await h.app.inject({ url: "/v1/alerts", headers: { authorization: `Bearer ${key}` } })).statusCode,
      ).toBe(401);
      expect((await send("DELETE", "/v1/keys/ffffffffffff", "admin")).statusCode).toBe(404);
      const changes = (await auditOf("key")).map((e) => e.action);
      expect(changes).toEqual(
        expect.arrayContaining(["key.create", "key.revoke", "key.create.request", "key.revoke.request"]),
      );
    });

    it("reads the audit log newest first, by action family and key, in pages; the chain verifies", async () => {
      const page = (await get("/v1/audit?limit=3&action=person", "admin")).json();
      expect(page.items).toHaveLength(3);
      expect(page.items[0].seq).toBeGreaterThan(page.items[1].seq);
      expect(page.items.every((e: { action: string }) => e.action.startsWith("person."))).toBe(true);
      const next = (await get(`/v1/audit?limit=3&action=person&cursor=${page.nextCursor}`, "admin")).json();
      expect(next.items[0].seq).toBeLessThan(page.items[2].seq);
      const byKey = (await get(`/v1/audit?key=${h.keyIds.operator}&limit=1000`, "admin")).json().items;
      expect(byKey.length).toBeGreaterThan(0);
      expect(byKey.every((e: { actor: { keyId: string } }) => e.actor.keyId === h.keyIds.operator)).toBe(
        true,
      );
      expect((await get("/v1/audit/verify", "admin")).json()).toMatchObject({ ok: true });
      expect((await auditOf("audit.read")).length).toBeGreaterThan(0);
    });

    it("is append-only in the database itself, and a changed row breaks the chain", async () => {
      const db = new Database(h.config.store.path!);
      try {
        expect(() => db.prepare("UPDATE audit_log SET actor = 'someone' WHERE seq = 1").run()).toThrow(
          /append-only/,
        );
        expect(() => db.prepare("DELETE FROM audit_log WHERE seq = 1").run()).toThrow(/append-only/);
        // Someone with the file can still drop the triggers; the hash chain shows it.
        db.exec("DROP TRIGGER audit_log_no_update");
        db.prepare("UPDATE audit_log SET summary = '{}' WHERE seq = 2").run();
      } finally {
        db.close();
      }
      expect((await get("/v1/audit/verify", "admin")).json()).toMatchObject({ ok: false, brokenAt: 2 });
    });
  });
});

describe("operator API limits: rate, CORS", () => {
  it("rate-limits per key with 429 and Retry-After; other keys are unaffected", async () => {
    const h = await apiHarness({ "api.rateLimit.perMinute": 60, "api.rateLimit.burst": 3 });
    try {
      const codes = [];
      for (let i = 0; i < 4; i++)
        codes.push((await h.app.inject({ url: "/v1/alerts", headers: h.auth("viewer") })).statusCode);
      expect(codes).toEqual([200, 200, 200, 429]);
      const limited = await h.app.inject({ url: "/v1/alerts", headers: h.auth("viewer") });
      expect(limited.headers["retry-after"]).toBe("1");
      expect((await h.app.inject({ url: "/v1/alerts", headers: h.auth("operator") })).statusCode).toBe(200);
    } finally {
      await h.close();
    }
  });

  it("sends no CORS headers unless origins are configured", async () => {
    const off = await apiHarness();
    const on = await apiHarness({ "api.corsOrigins": ["https://console.example"] });
    try {
      const ask = (app: Harness["app"]) =>
        app.inject({
          method: "OPTIONS",
          url: "/v1/alerts",
          headers: { origin: "https://console.example", "access-control-request-method": "GET" },
        });
      expect((await ask(off.app)).headers["access-control-allow-origin"]).toBeUndefined();
      const allowed = await ask(on.app);
      expect(allowed.headers["access-control-allow-origin"]).toBe("https://console.example");
      const other = await on.app.inject({
        url: "/v1/alerts",
        headers: { ...on.auth("viewer"), origin: "https://evil.example" },
      });
      expect(other.headers["access-control-allow-origin"]).toBeUndefined();
    } finally {
      await off.close();
      await on.close();
    }
  });
});

describe("camera snapshots (api.snapshots)", () => {
  it("keeps each camera's newest frame (at most one a second) and serves it as JPEG", async () => {
    const h = await apiHarness({ "api.snapshots": true });
    try {
      const frame = (
        seq: number,
        captureTs: number,
        width: number,
        height: number,
        format: "bgr24" | "yuv420p",
      ) => ({
        key: "door",
        value: FrameContract.encode({
          cameraId: "door",
          seq,
          captureTs,
          width,
          height,
          format,
          live: true,
          image: new Uint8Array(format === "bgr24" ? width * height * 3 : (width * height * 3) / 2).fill(128),
        }),
      });
      const t = Date.now();
      await h.bus.publish(Topics.frames, [
        frame(1, t, 32, 16, "bgr24"),
        frame(2, t + 200, 64, 32, "yuv420p"),
      ]);
      await h.bus.drain();
      const first = await h.app.inject({ url: "/v1/cameras/door/snapshot", headers: h.auth("viewer") });
      expect(first.statusCode).toBe(200);
      expect(first.headers["content-type"]).toBe("image/jpeg");
      // The second frame came 200 ms later: not worth a copy yet.
      expect(await sharp(first.rawPayload).metadata()).toMatchObject({
        width: 32,
        height: 16,
        format: "jpeg",
      });
      await h.bus.publish(Topics.frames, [frame(3, t + 1500, 64, 32, "yuv420p")]);
      await h.bus.drain();
      const next = await h.app.inject({ url: "/v1/cameras/door/snapshot", headers: h.auth("viewer") });
      expect(next.headers["x-capture-ts"]).toBe(String(t + 1500));
      expect(await sharp(next.rawPayload).metadata()).toMatchObject({ width: 64, height: 32 });
      expect(
        (await h.app.inject({ url: "/v1/cameras", headers: h.auth("viewer") })).json().items[0],
      ).toMatchObject({
        id: "door",
        state: "unknown",
        snapshotTs: t + 1500,
      });
    } finally {
      await h.close();
    }
  });
});
