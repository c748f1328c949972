import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiHarness, type Harness } from "../api-harness.ts";
import { tempDir } from "../helpers.ts";

/** The API serving a console build: a small fake build folder, so this runs without `npm run build`. */
describe("the console served by the API", () => {
  let h: Harness;
  const dir = tempDir("vigil-console-");
  beforeAll(async () => {
    mkdirSync(path.join(dir, "assets"), { recursive: true });
    writeFileSync(path.join(dir, "index.html"), "<!doctype html><title>console</title>");
    writeFileSync(path.join(dir, "assets", "index-abc123.js"), "console.log(1)");
    writeFileSync(path.join(dir, "assets", "style-abc123.css"), "body{}");
    writeFileSync(path.join(dir, "favicon.svg"), "<svg/>");
    writeFileSync(path.join(dir, ".env"), "SECRET-CONTENT-9c1");
    // A file beside the build that a traversal would try to reach.
    writeFileSync(path.join(path.dirname(dir), "outside.txt"), "OUTSIDE-CONTENT-7f3");
    h = await apiHarness({ "api.console.dir": dir });
  });
  afterAll(async () => h?.close());

  const get = (url: string, headers: Record<string, string> = {}) =>
    h.app.inject({ method: "GET", url, headers });

  it("serves the page with no-cache and a strict content security policy, hashed assets as immutable", async () => {
    const page = await get("/", { accept: "text/html" });
    expect(page.statusCode).toBe(200);
    expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(page.headers["cache-control"]).toBe("no-cache");
    expect(page.headers["content-security-policy"]).toContain("default-src 'self'");
    expect(page.headers["content-security-policy"]).toContain("connect-src 'self'");
    expect(page.body).toContain("<title>console</title>");

    const js = await get("/assets/index-abc123.js");
    expect(js.statusCode).toBe(200);
    expect(js.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(js.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect(js.headers["x-content-type-options"]).toBe("nosniff");
    expect((await get("/assets/style-abc123.css")).headers["content-type"]).toBe("text/css; charset=utf-8");
    const icon = await get("/favicon.svg");
    expect(icon.headers["content-type"]).toBe("image/svg+xml");
    expect(icon.headers["cache-control"]).toBe("no-cache");
    expect((await h.app.inject({ method: "HEAD", url: "/assets/index-abc123.js" })).statusCode).toBe(200);
  });

  it("answers a bookmark of any page path with the page, but never a missing asset or an API path", async () => {
    const deep = await get("/wall/some/where?x=1", { accept: "text/html,application/xhtml+xml" });
    expect(deep.statusCode).toBe(200);
    expect(deep.body).toContain("<title>console</title>");

    const asset = await get("/assets/index-old999.js", { accept: "*/*" });
    expect(asset.statusCode).toBe(404);
    expect(asset.json()).toMatchObject({ error: "not_found" });

    const api = await get("/v1/no-such-route", { accept: "text/html" });
    expect(api.statusCode).toBe(404);
    expect(api.json()).toEqual({ error: "not_found", message: "no route GET /v1/no-such-route" });
    // Non-HTML clients of an unknown path get the API's JSON 404 too.
    expect((await get("/nothing-here", { accept: "application/json" })).statusCode).toBe(404);
  });

  it("serves nothing outside the build folder, nor its hidden files", async () => {
    for (const url of [
      "/../outside.txt",
      "/%2e%2e/outside.txt",
      "/assets/..%2f..%2foutside.txt",
      "/assets/%2e%2e/%2e%2e/outside.txt",
      "/.env",
      "/%2eenv",
      "/assets/%00.js",
    ]) {
      const res = await get(url, { accept: "*/*" });
      expect(res.body, url).not.toContain("OUTSIDE-CONTENT");
      expect(res.body, url).not.toContain("SECRET-CONTENT");
      expect([200, 404], url).toContain(res.statusCode);
      if (res.statusCode === 200) expect(res.body, url).toContain("<title>console</title>");
    }
  });

  it("tells the console who the key is; the API still needs a key", async () => {
    const me = await h.app.inject({ method: "GET", url: "/v1/me", headers: h.auth("viewer") });
    expect(me.statusCode).toBe(200);
    expect(me.json()).toEqual({ keyId: h.keyIds.viewer, name: "viewer-key", role: "viewer" });
    expect((await h.app.inject({ method: "GET", url: "/v1/me" })).statusCode).toBe(401);
    const doc = (await get("/openapi.json")).json() as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).toContain("/v1/me");
    expect(Object.keys(doc.paths)).not.toContain("/*");
  });

  it("says how to build the console when it is not built", async () => {
    const bare = await apiHarness({ "api.console.dir": path.join(dir, "missing") });
    try {
      const res = await bare.app.inject({ method: "GET", url: "/", headers: { accept: "text/html" } });
      expect(res.statusCode).toBe(404);
      expect(res.body).toContain("npm run build");
    } finally {
      await bare.close();
    }
  });
});
