import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import {
  chromium,
  type BrowserContext,
  type Locator,
  type Page,
  type Response as PageResponse,
} from "playwright-core";
import sharp from "sharp";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { cliActor, KeyService } from "../../lib/api/keys.ts";
import { loadConfig } from "../../lib/config/index.ts";
import { cropLargestFace, samplePhotos, slideshowVideo } from "../../lib/media/sample-media.ts";
import { openApiStore } from "../../lib/store/open-store.ts";
import { freePort, guardServerProcess, until as pollUntil } from "../../lib/testing/process.ts";
import { cameraStream } from "../../lib/testing/rtsp/media.ts";
import { sharedVision, tempDir } from "../helpers.ts";

/** Pauses a clip's video at the face's moment (its player's `at`), as an operator scrubbing to it; returns it. */
const seekToFace = (video: Locator) =>
  video.evaluate(async (v) => {
    const el = v as HTMLVideoElement;
    const host = (el.getRootNode() as ShadowRoot).host as HTMLElement & {
      at: number;
      clip?: { start: number };
    };
    el.pause();
    el.currentTime = (host.at - host.clip!.start) / 1000;
    await new Promise((r) => el.addEventListener("seeked", r, { once: true }));
    return host.at;
  });

/** Polls every 250 ms: the console and this test share the admin key, rate-limited per key (api.rateLimit): polled faster, the test would starve the page of its own requests. */
const until = <T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs?: number) =>
  pollUntil(what, fn, timeoutMs, 250);

/**
 * The web console in Debian's Chromium (playwright-core drives it; nothing is downloaded), against a real
 * `vigil run --api` with real models, real RTSP cameras (GStreamer's server) and a real SQLite store.
 *
 * The story: bob is on the watchlist from the start; the operator signs in, enrols alice through the console
 * (one photo refused with its reason) while both cameras are down (connection refused: backoff with the
 * reason). Then the cameras' server starts: alice walks past the door, then the lobby; bob passes the door.
 * Her alert appears on the wall without a reload; she is acknowledged, bob's alert is marked "not this
 * person"; a photo search finds her on both cameras at the right times; her timeline runs door → lobby.
 */

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = path.resolve(".vigil/artifacts/console");
const STEP_S = 2;

function missingTool(): string | undefined {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} (Debian's chromium package)`;
  const gi = spawnSync("/usr/bin/python3", ["-c", "import gi; gi.require_version('GstRtspServer', '1.0')"]);
  if (gi.status !== 0) return "GStreamer's RTSP server for python3 (gir1.2-gst-rtsp-server-1.0)";
  return undefined;
}
const missing = missingTool();
if (missing)
  console.log(`skipping the console browser tests: ${missing} not found (npm test's setup installs it)`);

/** The console as `npm run build` makes it; built again when web/ changed since. */
function ensureConsoleBuilt() {
  const index = path.resolve("dist/console/index.html");
  const newest = (dir: string): number =>
    Math.max(
      0,
      ...readdirSync(dir, { withFileTypes: true }).map((e) =>
        e.isDirectory() ? newest(path.join(dir, e.name)) : statSync(path.join(dir, e.name)).mtimeMs,
      ),
    );
  if (existsSync(index) && statSync(index).mtimeMs >= newest(path.resolve("web"))) return;
  execFileSync("npm", ["run", "--silent", "build:console"], { stdio: "inherit" });
}

describe.skipIf(!!missing)("the web console in Chromium, on vigil run --api", () => {
  const dir = tempDir("vigil-console-e2e-");
  let vigil: ChildProcess | undefined;
  let rtsp: ChildProcess | undefined;
  let context: BrowserContext;
  let page: Page;
  let base = "";
  let rtspPort = 0;
  let rtspMounts = "";
  let startedAt = 0;
  const keys = { admin: "", viewer: "" };
  const log: string[] = [];
  const files: Record<string, Buffer> = {};

  const api = async <T>(url: string, key = keys.admin): Promise<T> => {
    const res = await fetch(`${base}${url}`, { headers: { authorization: `Bearer ${key}` } });
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };
  const shot = async (name: string, p: Page = page) => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const file = path.join(ARTIFACTS, `${name}.png`);
    await p.screenshot({ path: file, fullPage: false });
    // README pictures, when asked for: small palette PNGs (VIGIL_CONSOLE_DOCS=1).
    if (process.env.VIGIL_CONSOLE_DOCS === "1" && ["wall", "search", "timeline"].includes(name))
      await sharp(file)
        .resize({ width: 1100 })
        .png({ palette: true, quality: 80, compressionLevel: 9 })
        .toFile(path.resolve("docs", `console-${name}.png`));
  };
  const go = async (view: string) => {
    await page.locator(`nav a[data-view=${view}]`).click();
    await page.waitForFunction((v) => location.hash === `#/${v}`, view);
  };
  /** Drops files on a drop zone the way a desktop drag does: a DataTransfer holding File objects. */
  const drop = async (selector: string, names: string[]) => {
    const payload = names.map((name) => ({ name, b64: files[name]!.toString("base64") }));
    const transfer = await page.evaluateHandle((list) => {
      const dt = new DataTransfer();
      for (const f of list) {
        const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
        dt.items.add(new File([bytes], f.name, { type: "image/jpeg" }));
      }
      return dt;
    }, payload);
    await page
      .locator(`${selector} vigil-drop-zone button`)
      .dispatchEvent("drop", { dataTransfer: transfer });
  };

  beforeAll(async () => {
    ensureConsoleBuilt();
    const vision = await sharedVision();
    const photos = await samplePhotos(path.resolve(".vigil/cache"));
    // alice: the largest face of the first group photo; bob: of the fourth (as the demo's watchlist).
    await cropLargestFace(vision, photos[0]!, path.join(dir, "alice.jpg"));
    await cropLargestFace(vision, photos[3]!, path.join(dir, "watchlist", "bob", "bob.jpg"));
    const blank = path.join(dir, "empty-room.jpg");
    await sharp({ create: { width: 960, height: 540, channels: 3, background: { r: 70, g: 74, b: 80 } } })
      .jpeg()
      .toFile(blank);
    // Bob passes the door alone: photo 4's group also holds a woman who scores 0.55 against alice on the stills,
    // above the operating point (a hard look-alike the README reports), which would put a third visit in alice's
    // timeline whenever the live looks happen to favour her. This test is about the console's timeline.
    const bobPassing = path.join(dir, "bob-passing.jpg");
    await cropLargestFace(vision, photos[3]!, bobPassing, 1.0);
    files["alice.jpg"] = readFileSync(path.join(dir, "alice.jpg"));
    files["empty-room.jpg"] = readFileSync(blank);

    // Two cameras' footage, 2 s a picture: the door sees alice's group at 4 s and bob at 12 s, the lobby
    // sees alice's group at 10 s. 40 s each, then the server is stopped before it could play them again.
    const reel = (shows: Record<number, string>) =>
      Array.from({ length: 20 }, (_, i) => shows[i * STEP_S] ?? blank);
    const door = path.join(dir, "door.mp4");
    const lobby = path.join(dir, "lobby.mp4");
    await slideshowVideo(reel({ 4: photos[0]!, 12: bobPassing }), door, {
      secondsEach: STEP_S,
      width: 960,
      height: 540,
    });
    await slideshowVideo(reel({ 10: photos[0]! }), lobby, { secondsEach: STEP_S, width: 960, height: 540 });
    rtspPort = await freePort();
    rtspMounts = JSON.stringify({
      "/door": { kind: "file", path: cameraStream(door, dir, 40, 960, 540) },
      "/lobby": { kind: "file", path: cameraStream(lobby, dir, 40, 960, 540) },
    });

    const store = path.join(dir, "vigil.db");
    const configFile = path.join(dir, "vigil.config.json");
    writeFileSync(
      configFile,
      JSON.stringify({
        dataDir: path.resolve(".vigil"),
        log: { level: "warn" },
        store: { path: store, crops: { dir: path.join(dir, "crops") } },
        // Both cameras recorded, so alerts come with the video around them; the lobby keeps its sightings' clips
        // too, so her visit there plays its own.
        ingest: {
          fps: 5,
          width: 960,
          height: 540,
          recordDir: path.join(dir, "recordings"),
          record: { keep: "alerts", segmentS: 1, preRollS: 2, postRollS: 2 },
        },
        // One alert per person per camera for the whole test.
        match: { alertCooldownS: 3600 },
        api: { snapshots: true },
        cameras: [
          // The camera map: from the door to the lobby takes about 10 s.
          {
            id: "door",
            url: `rtsp://127.0.0.1:${rtspPort}/door`,
            neighbours: [{ id: "lobby", transitS: 10 }],
          },
          { id: "lobby", url: `rtsp://127.0.0.1:${rtspPort}/lobby`, record: { keep: "sightings" } },
        ],
      }),
    );
    // Keys made beforehand in the run's store file, as `vigil keys create` does.
    const config = loadConfig({ file: configFile, env: {} });
    const apiStore = await openApiStore(config);
    const service = new KeyService(apiStore, apiStore);
    keys.admin = (await service.create({ name: "console-admin", role: "admin" }, cliActor())).key;
    keys.viewer = (await service.create({ name: "wall-screen", role: "viewer" }, cliActor())).key;
    await apiStore.close();

    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    vigil = spawn(
      process.execPath,
      [
        path.resolve("bin/vigil.js"),
        "--config",
        configFile,
        "run",
        "--watchlist",
        path.join(dir, "watchlist"),
        "--api",
        `127.0.0.1:${port}`,
        "--events",
        "ndjson",
      ],
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, VIGIL_FROM_SOURCE: "1" } },
    );
    guardServerProcess(vigil, "vigil.js");
    vigil.stdout!.on("data", (d: Buffer) => log.push(d.toString()));
    vigil.stderr!.on("data", (d: Buffer) => log.push(d.toString()));
    await until(
      "vigil run --api",
      async () => {
        if (vigil!.exitCode !== null) throw new Error(`vigil exited:\n${log.join("").slice(-3000)}`);
        return (await fetch(`${base}/healthz`)).ok;
      },
      120_000,
    );

    context = await chromium.launchPersistentContext(tempDir("vigil-chromium-"), {
      executablePath: CHROMIUM,
      headless: true,
      chromiumSandbox: false,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      viewport: { width: 1366, height: 768 },
      colorScheme: "dark",
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on("pageerror", (err) => log.push(`page error: ${err.message}\n`));
  }, 300_000);

  // When a test fails, what vigil printed says why (a crash, a camera that never played, a stage that fell
  // behind): once, so that one cause does not print the same tail under every test it fails.
  let logShown = false;
  beforeEach(({ onTestFailed }) =>
    onTestFailed(() => {
      if (logShown) return;
      logShown = true;
      process.stderr.write(`vigil run --api, its last output:\n${log.join("").slice(-6000)}\n`);
    }),
  );

  afterAll(async () => {
    await context?.close().catch(() => {});
    rtsp?.kill("SIGKILL");
    // One SIGTERM stops the cameras and the API; SIGKILL only if that hangs.
    const exited = vigil && vigil.exitCode === null ? new Promise((r) => vigil!.once("exit", r)) : undefined;
    for (const signal of ["SIGTERM", "SIGKILL"] as const) {
      if (!exited) break;
      vigil!.kill(signal);
      const gone = await Promise.race([
        exited.then(() => true),
        new Promise((r) => setTimeout(() => r(false), 5000)),
      ]);
      if (gone) break;
    }
  });

  it("signs in with an API key, by keyboard alone", async () => {
    const t0 = Date.now();
    await page.goto(`${base}/`);
    await page.locator("vigil-sign-in #key").waitFor();
    const shown = Date.now() - t0;
    const timing = await page.evaluate(() => {
      const nav = performance.getEntriesByType("navigation")[0] as PerformanceNavigationTiming;
      const bytes = performance
        .getEntriesByType("resource")
        .reduce((n, r) => n + (r as PerformanceResourceTiming).transferSize, nav.transferSize);
      return { domContentLoaded: nav.domContentLoadedEventEnd, load: nav.loadEventEnd, bytes };
    });
    console.log(
      `console first load: sign-in form shown ${shown} ms after navigation (DOMContentLoaded ${timing.domContentLoaded.toFixed(0)} ms, load ${timing.load.toFixed(0)} ms, ${timing.bytes} bytes transferred)`,
    );
    await shot("sign-in");
    // The key field has the focus: type and press Enter.
    await page.keyboard.type("not-a-key");
    await page.keyboard.press("Enter");
    await expect
      .poll(() => page.locator("vigil-sign-in [role=alert]").textContent())
      .toContain("not a valid API key");
    await page.locator("vigil-sign-in #key").fill("");
    await page.locator("vigil-sign-in #key").focus();
    await page.keyboard.type(keys.admin);
    await page.keyboard.press("Enter");
    await page.locator("nav a[data-view=audit]").waitFor();
    expect(await page.locator("header [data-role]").textContent()).toBe("admin");
    expect(await page.locator("nav a").allTextContents()).toEqual([
      "Alerts",
      "Cameras",
      "Watchlist",
      "Unknown people",
      "Search",
      "Timeline",
      "Audit",
    ]);
    // Marks this document: a reload would lose it.
    await page.evaluate(() => ((window as unknown as { vigilNoReload: boolean }).vigilNoReload = true));
  });

  it("enrols a person by dropping several photos and shows the refused photo's reason", async () => {
    await go("watchlist");
    const form = page.locator("vigil-watchlist form");
    await form.locator("#id").fill("alice");
    await form.locator("#name").fill("Alice Example");
    await drop("vigil-watchlist form", ["alice.jpg", "empty-room.jpg"]);
    await expect.poll(() => form.locator("ul.files li").count()).toBe(2);
    await form.locator("button[type=submit]").click();
    const outcome = (file: string) => form.locator(`li[data-file="${file}"] [data-field=outcome]`);
    await outcome("empty-room.jpg").waitFor({ timeout: 60_000 });
    expect(await outcome("empty-room.jpg").textContent()).toBe("refused: no face found");
    expect(await outcome("alice.jpg").textContent()).toBe("enrolled");
    await page.locator('vigil-watchlist article[data-person="alice"]').waitFor();
    const alice = await api<{ name: string; photos: { source: string }[] }>("/v1/people/alice");
    expect(alice).toMatchObject({ name: "Alice Example", photos: [{ source: "alice.jpg" }] });
    await shot("watchlist");
  });

  it("shows cameras that cannot connect in backoff with the reason", async () => {
    await go("cameras");
    const door = page.locator('vigil-cameras article[data-camera="door"]');
    await door.waitFor();
    await expect
      .poll(() => door.locator("[data-field=state]").textContent(), { timeout: 30_000 })
      .toMatch(/backoff|error|connecting/);
    await expect
      .poll(() => door.locator("[data-field=reason]").textContent(), { timeout: 30_000 })
      .toMatch(/refused|failed|error|Connection/i);
    await shot("cameras-down");
  });

  it("shows an alert live on the wall, without a reload, once the cameras play", async () => {
    await go("wall");
    expect(await page.locator("vigil-wall li.card").count()).toBe(0);
    // The cameras' server starts now: alice is at the door 4 s into its footage.
    rtsp = spawn(
      "/usr/bin/python3",
      [path.resolve("lib/testing/rtsp/rtsp_server.py"), String(rtspPort), rtspMounts],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    guardServerProcess(rtsp, "rtsp_server.py");
    startedAt = Date.now();
    const card = page.locator('vigil-wall li.card[data-person="alice"][data-camera="door"]');
    await card.waitFor({ timeout: 90_000 });
    const stored = await api<{
      items: {
        id: string;
        personId: string;
        cameraId: string;
        score: number;
        threshold: number;
        personCropUrl: string | null;
      }[];
    }>("/v1/alerts?person=alice&camera=door");
    expect(stored.items).toHaveLength(1);
    const alert = stored.items[0]!;
    expect(await card.getAttribute("data-alert")).toBe(alert.id);
    expect(await card.locator("[data-field=score]").textContent()).toBe(alert.score.toFixed(3));
    expect(await card.locator("[data-field=threshold]").textContent()).toBe(alert.threshold.toFixed(3));
    expect(await card.locator(".name").textContent()).toBe("Alice Example");
    // The face crop, fetched with the key, is a real picture.
    await expect
      .poll(() =>
        card
          .locator("vigil-img img")
          .first()
          .evaluate((img) => (img as HTMLImageElement).naturalWidth),
      )
      .toBeGreaterThan(0);
    // Beside it, the aligned face kept when she was enrolled through the console, also a real picture.
    expect(alert.personCropUrl).toBe("/v1/people/alice/photos/alice.jpg/crop");
    const enrolled = card.locator('vigil-img[alt="enrolled photo of Alice Example"]');
    expect(await enrolled.getAttribute("src")).toBe(alert.personCropUrl);
    await expect
      .poll(() => enrolled.locator("img").evaluate((img) => (img as HTMLImageElement).naturalWidth))
      .toBeGreaterThan(0);
    expect(await page.evaluate(() => (window as unknown as { vigilNoReload?: boolean }).vigilNoReload)).toBe(
      true,
    );
  });

  it("plays the video around the alert, cut from the camera's recording", async () => {
    const card = page.locator('vigil-wall li.card[data-person="alice"][data-camera="door"]');
    const clip = card.locator("vigil-clip");
    // Cut a few seconds after the alert (post-roll, then the segment that holds it): until then the API says so.
    await until(
      "the alert's clip",
      async () => {
        const { items } = await api<{ items: { clipUrl: string | null }[] }>(
          "/v1/alerts?person=alice&camera=door",
        );
        const res = await fetch(`${base}${items[0]!.clipUrl}`, {
          headers: { authorization: `Bearer ${keys.admin}` },
        });
        return res.ok;
      },
      30_000,
    );
    await clip.locator("button").click();
    const video = clip.locator("video");
    await video.waitFor({ timeout: 15_000 });
    await expect
      .poll(() => video.evaluate((v) => (v as HTMLVideoElement).readyState), { timeout: 15_000 })
      .toBeGreaterThanOrEqual(1);
    const duration = await video.evaluate((v) => (v as HTMLVideoElement).duration);
    // Pre-roll and post-roll around the face: at least 4 s of the door camera.
    expect(duration).toBeGreaterThan(3.5);
    expect(await clip.locator("[data-field=clip-note]").textContent()).toMatch(/face at 0:0\d of 0:\d\d/);
    // At the face's moment its box is drawn over the video where the face was (the door's 960×540 footage fills
    // its 960×540 frames: the box's place in the picture is the alert's place in the frame).
    const { items } = await api<{ items: { box: { x: number; width: number } }[] }>(
      "/v1/alerts?person=alice&camera=door",
    );
    await seekToFace(video);
    const face = clip.locator("[data-field=face-box]");
    await face.waitFor({ timeout: 5000 });
    const [v, f] = await Promise.all([video.boundingBox(), face.boundingBox()]);
    expect((f!.x - v!.x) / v!.width).toBeCloseTo(items[0]!.box.x / 960, 1);
    expect(f!.width / v!.width).toBeCloseTo(items[0]!.box.width / 960, 1);
    await shot("clip");
  });

  it("acknowledges the alert", async () => {
    const card = page.locator('vigil-wall li.card[data-person="alice"][data-camera="door"]');
    await card.getByRole("button", { name: "Acknowledge" }).click();
    await expect
      .poll(() => card.locator("[data-field=ack]").textContent())
      .toContain("acknowledged by console-admin");
    const id = (await card.getAttribute("data-alert"))!;
    const stored = await api<{ acknowledged: { by: string } | null }>(`/v1/alerts/${encodeURIComponent(id)}`);
    expect(stored.acknowledged?.by).toBe("console-admin");
  });

  it('marks a false alert "not this person", which adds an exclusion', async () => {
    const card = page.locator('vigil-wall li.card[data-person="bob"]');
    await card.waitFor({ timeout: 60_000 });
    await card.getByRole("button", { name: "Not this person" }).click();
    await card.getByRole("button", { name: "Confirm: not bob" }).click();
    await expect.poll(() => card.locator("[data-field=message]").textContent()).toContain("marked “not bob”");
    const exclusions = await api<{ items: { note: string }[] }>("/v1/people/bob/exclusions");
    expect(exclusions.items).toHaveLength(1);
    expect(exclusions.items[0]!.note).toContain("not bob");
    await page
      .locator('vigil-wall li.card[data-person="alice"][data-camera="lobby"]')
      .waitFor({ timeout: 60_000 });
    await shot("wall");
  });

  it("keeps every alert once across a reconnect of the live stream", async () => {
    const before = await page.locator("vigil-wall li.card").count();
    await page.evaluate(() =>
      (document.querySelector("vigil-app") as unknown as { feed: { reconnect(): void } }).feed.reconnect(),
    );
    await expect
      .poll(() =>
        page.evaluate(
          () =>
            (document.querySelector("vigil-app") as unknown as { feed: { reconnects: number } }).feed
              .reconnects,
        ),
      )
      .toBeGreaterThan(0);
    await expect.poll(() => page.locator("header [role=status]").textContent()).toContain("alerts live");
    const ids = await page
      .locator("vigil-wall li.card")
      .evaluateAll((els) => els.map((e) => e.getAttribute("data-alert")));
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBe(before);
    const stored = await api<{ items: unknown[] }>("/v1/alerts");
    expect(ids.length).toBe(stored.items.length);
  });

  it("shows the cameras live with frame rate, drops, snapshot and faces per minute", async () => {
    await go("cameras");
    const door = page.locator('vigil-cameras article[data-camera="door"]');
    await expect
      .poll(() => door.locator("[data-field=state]").textContent(), { timeout: 30_000 })
      .toBe("live");
    // Sampled at 5 fps: the rate comes from the frame counter between two status records.
    await expect
      .poll(async () => parseFloat((await door.locator("[data-field=fps]").textContent()) ?? ""), {
        timeout: 20_000,
      })
      .toBeGreaterThan(2);
    await expect
      .poll(() => door.locator("vigil-img img").evaluate((img) => (img as HTMLImageElement).naturalWidth), {
        timeout: 15_000,
      })
      .toBe(960);
    expect(await door.locator("[data-field=drops]").textContent()).toMatch(/^\d+$/);
    expect(await door.locator("[data-field=faces]").textContent()).toMatch(/^\d+$/);
    await shot("cameras");
  });

  it("finds a face by photo search on the right cameras at the right times", async () => {
    // Her sightings end 3 s after she leaves each picture; then the footage would only repeat.
    type S = { items: { id: string; cameraId: string; startTs: number }[] };
    const sightings = await until(
      "alice's sightings on both cameras",
      async () => {
        const s = await api<S>("/v1/sightings?person=alice");
        return new Set(s.items.map((i) => i.cameraId)).size === 2 && s;
      },
      60_000,
    );
    rtsp?.kill("SIGKILL");
    await go("search");
    await drop("vigil-search", ["alice.jpg"]);
    await page.locator("vigil-search button[type=submit]").click();
    const hits = page.locator("vigil-search li[data-sighting]");
    await hits.first().waitFor({ timeout: 60_000 });
    const found = await hits.evaluateAll((els) =>
      els.map((e) => ({
        id: e.getAttribute("data-sighting")!,
        camera: e.querySelector("[data-field=camera]")!.textContent,
        start: Number(e.getAttribute("data-start")),
        time: e.querySelector("[data-field=time]")!.textContent,
        same: e.classList.contains("same"),
      })),
    );
    const same = found.filter((h) => h.same);
    expect(new Set(same.map((h) => h.camera))).toEqual(new Set(["door", "lobby"]));
    // Every sighting the watchlist matched to her is a same-person hit, with the stored camera and time.
    for (const s of sightings.items) {
      const hit = same.find((h) => h.id === s.id);
      expect(hit, s.id).toBeDefined();
      expect(hit!.camera).toBe(s.cameraId);
      expect(hit!.start).toBe(s.startTs);
      expect(hit!.time).toBe(
        await page.evaluate((ts) => new Date(ts).toLocaleTimeString(undefined, { hour12: false }), s.startTs),
      );
    }
    // She was at the door ~4 s into the footage and in the lobby ~10 s in (plus connection time).
    const first = (camera: string) =>
      Math.min(...same.filter((h) => h.camera === camera).map((h) => h.start));
    expect(first("door") - startedAt).toBeGreaterThan(0);
    expect(first("door") - startedAt).toBeLessThan(20_000);
    expect(first("lobby") - first("door")).toBeGreaterThan(2_000);
    expect(first("lobby") - first("door")).toBeLessThan(12_000);
    expect(await page.locator("vigil-search vigil-time-axis rect.item").count()).toBe(found.length);
    await shot("search");
  });

  it("opens the timeline of a person seen on two cameras, in order", async () => {
    await go("timeline");
    await page.locator("vigil-timeline select").selectOption("alice");
    const visits = page.locator("vigil-timeline ol.visits li");
    await visits
      .first()
      .waitFor({ timeout: 30_000 })
      .catch(async (err: Error) => {
        // Seen once in a clean-clone run: no visit within 30 s. Say what the view showed (an error, nothing).
        const shown = await page
          .locator("vigil-timeline")
          .innerText()
          .catch(() => "(unreadable)");
        throw new Error(`${err.message}
the timeline view shows: ${shown.slice(0, 600)}`);
      });
    const order = await visits.evaluateAll((els) =>
      els.map((e) => ({
        camera: e.getAttribute("data-camera"),
        start: Number(e.getAttribute("data-start")),
      })),
    );
    // Door, then lobby. On a loaded machine the 40 s reels may loop before the cameras are stopped: a later visit
    // is then the footage repeating (her next door appearance is 40 s on), never someone else labelled her.
    expect(order.slice(0, 2).map((v) => v.camera)).toEqual(["door", "lobby"]);
    expect(order[0]!.start).toBeLessThan(order[1]!.start);
    for (const repeat of order.slice(2)) expect(repeat.start - order[0]!.start).toBeGreaterThan(30_000);
    expect(await page.locator("vigil-timeline vigil-time-axis rect.item").count()).toBe(order.length);
    await expect
      .poll(() =>
        visits
          .first()
          .locator("vigil-img img")
          .evaluate((img) => (img as HTMLImageElement).naturalWidth),
      )
      .toBeGreaterThan(0);
    expect(await page.evaluate(() => location.hash)).toBe("#/timeline?person=alice");
    await shot("timeline");
  });

  it("plays her visits camera after camera (the door's alert's clip, the lobby's own), her face boxed", async () => {
    // The lobby's visit plays the clip of its first sighting, her best face boxed at its time: wait for the clip,
    // or the player would stand in the lobby's alert's clip (boxed as well, from another face).
    const { visits } = await api<{ visits: { cameraId: string; sightings: string[] }[] }>(
      "/v1/timeline?person=alice",
    );
    const lobby = visits.find((v) => v.cameraId === "lobby")!;
    const sightingPath = `/v1/sightings/${encodeURIComponent(lobby.sightings[0]!)}`;
    const seen = await api<{ box: { x: number; width: number }; boxTs: number }>(sightingPath);
    await until(
      "the lobby sighting's clip",
      async () =>
        (await fetch(`${base}${sightingPath}/clip`, { headers: { authorization: `Bearer ${keys.admin}` } }))
          .ok,
      30_000,
    );
    const clips: string[] = [];
    const clipFetched = (r: PageResponse) => {
      if (r.url().endsWith("/clip")) clips.push(`${r.status()} ${new URL(r.url()).pathname}`);
    };
    page.on("response", clipFetched);
    const player = page.locator("vigil-timeline vigil-visit-player");
    await player.locator("button").click();
    const playing = player.locator("[data-field=playing]");
    await expect.poll(() => playing.textContent(), { timeout: 20_000 }).toMatch(/visit 1 of \d+ · door/);
    // To the end of the door's clip: the lobby's follows by itself.
    await player.locator("video").evaluate((v) => {
      const el = v as HTMLVideoElement;
      el.currentTime = Math.max(0, el.duration - 0.2);
      void el.play();
    });
    await expect.poll(() => playing.textContent(), { timeout: 20_000 }).toMatch(/visit 2 of \d+ · lobby/);
    await expect
      .poll(() => player.locator("video").evaluate((v) => (v as HTMLVideoElement).readyState), {
        timeout: 15_000,
      })
      .toBeGreaterThanOrEqual(1);
    // At the best face's time its box is drawn where the face was, as over an alert's clip (the wall's test).
    const clip = player.locator("vigil-clip");
    const video = clip.locator("video");
    const at = await seekToFace(video);
    page.off("response", clipFetched);
    expect(clips).toContain(`200 ${sightingPath}/clip`);
    expect(at).toBe(seen.boxTs);
    const face = clip.locator("[data-field=face-box]");
    await face.waitFor({ timeout: 5000 });
    const [v, f] = await Promise.all([video.boundingBox(), face.boundingBox()]);
    expect((f!.x - v!.x) / v!.width).toBeCloseTo(seen.box.x / 960, 1);
    expect(f!.width / v!.width).toBeCloseTo(seen.box.width / 960, 1);
  });

  it("follows her live: newest sightings first, where she may appear next, and stops", async () => {
    const follow = page.locator("vigil-timeline vigil-follow");
    await follow.locator("button", { hasText: "Follow live" }).click();
    await follow.locator("[data-field=following]").waitFor({ timeout: 10_000 });
    const followed = await api<{ items: { personId: string }[] }>("/v1/follows");
    expect(followed.items.map((f) => f.personId)).toEqual(["alice"]);
    const starts = await follow
      .locator("li")
      .evaluateAll((els) => els.map((e) => Number(e.getAttribute("data-start"))));
    expect(starts.length).toBeGreaterThanOrEqual(2);
    expect([...starts].sort((a, b) => b - a)).toEqual(starts);
    // From either camera, the other is its neighbour on the map.
    expect(await follow.locator("[data-field=next]").textContent()).toMatch(
      /may appear next:\s*(door|lobby) \(~10 s\)/,
    );
    await follow.locator("button", { hasText: "Stop following" }).click();
    await follow.locator("button", { hasText: "Follow live" }).waitFor({ timeout: 10_000 });
    expect((await api<{ items: unknown[] }>("/v1/follows")).items).toEqual([]);
  });

  it("shows the audit log to an admin, filtered by action", async () => {
    await go("audit");
    await page.locator("vigil-audit input[name=action]").fill("person");
    await page.locator("vigil-audit button[type=submit]").click();
    await expect
      .poll(() =>
        page
          .locator("vigil-audit tbody tr")
          .evaluateAll((rows) => rows.map((r) => r.getAttribute("data-action"))),
      )
      .toContain("person.enrol");
    const actions = await page
      .locator("vigil-audit tbody tr")
      .evaluateAll((rows) => rows.map((r) => r.getAttribute("data-action")));
    expect(actions.every((a) => a!.startsWith("person"))).toBe(true);
    await shot("audit");
  });

  it("fits a 1366×768 laptop and a 1920×1080 screen without a horizontal scroll", async () => {
    for (const size of [
      { width: 1366, height: 768 },
      { width: 1920, height: 1080 },
    ]) {
      await page.setViewportSize(size);
      for (const view of ["wall", "cameras", "watchlist", "unknowns", "search", "timeline", "audit"]) {
        await go(view);
        await page.waitForTimeout(200);
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        expect(overflow, `${view} at ${size.width}×${size.height}`).toBeLessThanOrEqual(0);
      }
    }
    await page.setViewportSize({ width: 1366, height: 768 });
  });

  it("gives a viewer key no search (hidden, and refused by the API)", async () => {
    const viewer = await context.newPage();
    await viewer.goto(`${base}/#/search`);
    await viewer.locator("vigil-sign-in #key").fill(keys.viewer);
    await viewer.locator("vigil-sign-in #key").press("Enter");
    await viewer.locator("nav a[data-view=wall]").waitFor();
    expect(await viewer.locator("nav a").allTextContents()).toEqual(["Alerts", "Cameras"]);
    expect(await viewer.locator("main [role=alert]").textContent()).toContain(
      "Search is not available to a viewer key",
    );
    expect(await viewer.locator("vigil-search").count()).toBe(0);
    const status = await viewer.evaluate(async (key) => {
      const body = new FormData();
      body.append("photo", new Blob([new Uint8Array([0xff, 0xd8])], { type: "image/jpeg" }), "x.jpg");
      const res = await fetch("/v1/sightings/search", {
        method: "POST",
        headers: { authorization: `Bearer ${key}` },
        body,
      });
      return res.status;
    }, keys.viewer);
    expect(status).toBe(403);
    await viewer.locator("nav a[data-view=wall]").click();
    await viewer.locator("vigil-wall li.card").first().waitFor();
    expect(await viewer.locator("vigil-wall button", { hasText: "Acknowledge" }).count()).toBe(0);
    expect(await viewer.locator("vigil-wall button", { hasText: "Not this person" }).count()).toBe(0);
    await shot("viewer", viewer);
    await viewer.close();
  });

  it("promotes an unknown identity to the watchlist", async () => {
    type U = { items: { id: string; count: number; bestSightings: string[]; promotedTo: string | null }[] };
    await until("an unknown identity", async () => (await api<U>("/v1/unknowns")).items.length > 0, 30_000);
    await go("unknowns");
    const item = page.locator("vigil-unknowns li.unknown").first();
    await item.waitFor();
    const id = (await item.getAttribute("data-unknown"))!;
    await item.locator("input[name=name]").fill("Stranger One");
    await shot("unknowns");
    await item.getByRole("button", { name: "Promote to watchlist" }).click();
    await expect
      .poll(() => page.locator("vigil-unknowns [role=status]").textContent(), { timeout: 60_000 })
      .toMatch(/promoted to|refused|no /);
    const message = (await page.locator("vigil-unknowns [role=status]").textContent())!;
    expect(message, message).toMatch(/^promoted to \S+: [1-9]\d* face\(s\) enrolled/);
    const personId = /^promoted to (\S+):/.exec(message)![1]!;
    const person = await api<{ name: string; photos: unknown[] }>(
      `/v1/people/${encodeURIComponent(personId)}`,
    );
    expect(person.name).toBe("Stranger One");
    expect(person.photos.length).toBeGreaterThan(0);
    // It stays in the queue, marked with the person it became.
    await expect
      .poll(() => page.locator(`vigil-unknowns li[data-unknown="${id}"] [data-field=promoted]`).textContent())
      .toBe(`promoted to ${personId}`);
    const after = await api<{ promotedTo: string | null }>(`/v1/unknowns/${encodeURIComponent(id)}`);
    expect(after.promotedTo).toBe(personId);
  });
});
