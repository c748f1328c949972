import { deflateSync } from "node:zlib";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readImageHeader } from "../lib/api/image-header.ts";
import { KeyService, cliActor } from "../lib/api/keys.ts";
import { MemoryBus } from "../lib/bus/index.ts";
import { cropLargestFace, samplePhotos } from "../lib/media/sample-media.ts";
import { SqliteApiStore } from "../lib/store/sqlite-api-store.ts";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import { Metrics } from "../lib/telemetry/metrics.ts";
import { thresholdFor } from "../lib/vision/models/calibration.ts";
import { photoEmbedder } from "../lib/watchlist/photo.ts";
import { buildApi } from "../services/api/app.ts";
import { LiveFeed } from "../services/api/live.ts";
import { apiHarness, form, photo, RED, sighting, type Harness } from "./api-harness.ts";
import { sharedVision, tempDir, testConfig } from "./helpers.ts";

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type: string, data: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const out = Buffer.alloc(8 + data.length + 4);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), 8 + data.length);
  return out;
}

/**
 * A decompression bomb: a valid PNG header declaring width × height 1-bit pixels, then the deflated start of an
 * all-black image. A few KB on the wire; a decoder would allocate width × height × 3 bytes for it.
 */
function pngBomb(width: number, height: number, rows = 64): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 1; // bit depth
  ihdr[9] = 0; // greyscale
  const raw = Buffer.alloc((1 + Math.ceil(width / 8)) * rows);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw, { level: 9 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

async function noisyJpeg(width: number, height: number): Promise<Buffer> {
  const pixels = Buffer.alloc(width * height * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 2654435761) >>> 24;
  return sharp(pixels, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 95 })
    .toBuffer();
}

describe("image headers, read without a decoder", () => {
  it("reads JPEG (baseline, progressive, behind EXIF), PNG and WebP sizes", async () => {
    const base = sharp({ create: { width: 321, height: 123, channels: 3, background: RED } });
    expect(readImageHeader(await base.clone().jpeg().toBuffer())).toEqual({
      ok: true,
      format: "jpeg",
      width: 321,
      height: 123,
    });
    expect(readImageHeader(await base.clone().jpeg({ progressive: true }).toBuffer())).toMatchObject({
      width: 321,
      height: 123,
    });
    const exif = await base.clone().withMetadata({ orientation: 6 }).jpeg().toBuffer();
    expect(readImageHeader(exif)).toMatchObject({ format: "jpeg", width: 321, height: 123 });
    expect(readImageHeader(await base.clone().png().toBuffer())).toEqual({
      ok: true,
      format: "png",
      width: 321,
      height: 123,
    });
    for (const options of [{}, { lossless: true }]) {
      expect(readImageHeader(await base.clone().webp(options).toBuffer())).toEqual({
        ok: true,
        format: "webp",
        width: 321,
        height: 123,
      });
    }
    expect(readImageHeader(await base.clone().ensureAlpha().webp().toBuffer())).toMatchObject({
      width: 321,
      height: 123,
    });
    expect(readImageHeader(pngBomb(50_000, 50_000))).toEqual({
      ok: true,
      format: "png",
      width: 50_000,
      height: 50_000,
    });
  });

  it("refuses what is not a JPEG, PNG or WebP, or ends before its size", async () => {
    expect(readImageHeader(Buffer.from("hello, world"))).toMatchObject({
      ok: false,
      reason: "not a JPEG, PNG or WebP image",
    });
    expect(readImageHeader(Buffer.from("GIF89a\x10\x00\x10\x00"))).toMatchObject({ ok: false });
    const jpeg = await photo(RED);
    expect(readImageHeader(jpeg.subarray(0, 10))).toMatchObject({
      ok: false,
      reason: "JPEG ends before its frame header",
    });
    expect(readImageHeader(Buffer.from([0xff, 0xd8, 0xff, 0xda, 0, 2]))).toMatchObject({ ok: false });
    expect(readImageHeader(pngBomb(10, 10).subarray(0, 20))).toMatchObject({ ok: false });
  });
});

describe("hostile uploads are refused before anything is stored", () => {
  let h: Harness;
  const enrol = async (files: Parameters<typeof form>[1], id = "eve") => {
    const f = await form({ id }, files);
    return h.app.inject({
      method: "POST",
      url: "/v1/people",
      payload: f.payload,
      headers: { ...h.auth("admin"), ...f.headers },
    });
  };
  const untouched = async () => {
    expect(await h.store.listPeople()).toEqual([]);
    expect(await h.store.getPerson("eve")).toBeUndefined();
  };

  beforeAll(async () => {
    h = await apiHarness({
      "api.upload.maxBytes": 200_000,
      "api.upload.maxPixels": 4_000_000,
      "api.upload.maxFiles": 3,
    });
  });
  afterAll(async () => h?.close());

  it("a file that is not an image: 415 with the reason", async () => {
    const res = await enrol([
      { name: "notes.txt", bytes: Buffer.from("not a photo at all"), type: "text/plain" },
    ]);
    expect(res.statusCode).toBe(415);
    expect(res.json()).toEqual({
      error: "unsupported_media_type",
      message: "notes.txt: not a JPEG, PNG or WebP image",
    });
    await untouched();
  });

  it("a truncated JPEG: 422 with the decoder's reason", async () => {
    const whole = await noisyJpeg(200, 150);
    const res = await enrol([{ name: "cut.jpg", bytes: whole.subarray(0, Math.floor(whole.length / 2)) }]);
    expect(res.statusCode).toBe(422);
    expect(res.json().message).toMatch(/^cut\.jpg: not a readable jpeg image: .*premature end/i);
    await untouched();
  });

  it("a file over the byte limit: 413, refused while streaming", async () => {
    const big = Buffer.concat([await photo(RED), Buffer.alloc(300_000, 7)]);
    const res = await enrol([{ name: "huge.jpg", bytes: big }]);
    expect(res.statusCode).toBe(413);
    expect(res.json().error).toBe("too_large");
    await untouched();
  });

  it("a 50,000 × 50,000 PNG bomb of a few KB: 413 from its header, without decoding it", async () => {
    const bomb = pngBomb(50_000, 50_000);
    expect(bomb.length).toBeLessThan(4096);
    const rss = process.memoryUsage().rss;
    const started = performance.now();
    const res = await enrol([{ name: "bomb.png", bytes: bomb, type: "image/png" }]);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(res.statusCode).toBe(413);
    expect(res.json().message).toBe(
      "bomb.png: 50000×50000 is 2500.0 megapixels, over the 4.0 megapixels limit",
    );
    // 7.5 GB had it been decoded; nothing like it was allocated.
    expect(process.memoryUsage().rss - rss).toBeLessThan(100 * 1024 * 1024);
    expect(h.photos.decoded.some((d) => d.name === "bomb.png")).toBe(false);
    await untouched();
  });

  it("a bomb under the decoder's own limit but over the configured one is refused just the same", async () => {
    const res = await enrol([{ name: "wide.png", bytes: pngBomb(10_000, 10_000), type: "image/png" }]);
    expect(res.statusCode).toBe(413);
    expect(res.json().message).toContain("100.0 megapixels");
    await untouched();
  });

  it("one bad file among good ones refuses the whole request: the good ones are not stored either", async () => {
    const res = await enrol([
      { name: "good.jpg", bytes: await photo(RED) },
      { name: "bomb.png", bytes: pngBomb(50_000, 50_000), type: "image/png" },
    ]);
    expect(res.statusCode).toBe(413);
    await untouched();
    const tooMany = await enrol(
      await Promise.all([1, 2, 3, 4].map(async (i) => ({ name: `${i}.jpg`, bytes: await photo(RED) }))),
    );
    expect(tooMany.statusCode).toBe(413);
    await untouched();
  });

  it("an empty file, or a body that is not multipart: 4xx with the reason", async () => {
    const empty = await enrol([{ name: "empty.jpg", bytes: new Uint8Array(0) }]);
    expect(empty.statusCode).toBe(422);
    expect(empty.json().message).toBe("empty.jpg: the file is empty");
    const json = await h.app.inject({
      method: "POST",
      url: "/v1/people",
      payload: { id: "eve" },
      headers: h.auth("admin"),
    });
    expect(json.statusCode).toBe(400);
    expect(json.json().message).toContain("multipart/form-data");
    await untouched();
  });

  it("search and exclusion uploads go through the same checks", async () => {
    const f = await form({}, [{ name: "bomb.png", bytes: pngBomb(50_000, 50_000), type: "image/png" }]);
    for (const url of ["/v1/sightings/search", "/v1/timeline"]) {
      const res = await h.app.inject({
        method: "POST",
        url,
        payload: f.payload,
        headers: { ...h.auth("operator"), ...f.headers },
      });
      expect(res.statusCode, url).toBe(413);
    }
    await h.store.upsertPerson({ id: "ann", name: "Ann", watchlistId: "default" });
    const excl = await h.app.inject({
      method: "POST",
      url: "/v1/people/ann/exclusions",
      payload: f.payload,
      headers: { ...h.auth("admin"), ...f.headers },
    });
    expect(excl.statusCode).toBe(413);
    expect(await h.store.listExclusions("ann")).toEqual([]);
    await h.store.removePerson("ann");
  });

  it("honours EXIF orientation, and takes WebP", async () => {
    const rotated = await photo(RED, { width: 64, height: 48, orientation: 6 });
    const webp = await sharp(await photo(RED))
      .webp()
      .toBuffer();
    const res = await enrol(
      [
        { name: "sideways.jpg", bytes: rotated },
        { name: "modern.webp", bytes: webp, type: "image/webp" },
      ],
      "fay",
    );
    expect(res.statusCode).toBe(201);
    expect(res.json().photos.map((p: { ok: boolean }) => p.ok)).toEqual([true, true]);
    // Stored 64 × 48 with "rotate 90°": the face is seen upright, 48 × 64.
    expect(h.photos.decoded.find((d) => d.name === "sideways.jpg")).toMatchObject({ width: 48, height: 64 });
    await h.store.removePerson("fay");
  });

  it("records each refused upload in the audit log as failed, with its status", async () => {
    const failed = (await h.apiStore.listAudit({ limit: 100, action: "person.enrol" })).items.filter(
      (e) => e.outcome === "failed",
    );
    expect(failed.map((e) => e.status).sort()).toEqual([400, 413, 413, 413, 413, 413, 415, 422, 422].sort());
    expect(failed.every((e) => e.actor.name === "admin-key")).toBe(true);
  });
});

describe("uploads with the real models", () => {
  it("enrols an EXIF-rotated photo and finds the person by photo, through the API", async () => {
    const vision = await sharedVision();
    const dir = tempDir("vigil-api-real-");
    const file = path.join(dir, "vigil.db");
    const config = testConfig({ "store.path": file });
    const photos = await samplePhotos(path.resolve(".vigil/cache"));
    const face = path.join(dir, "face.jpg");
    await cropLargestFace(vision, photos[0]!, face, 0.9);
    // Pixels turned a quarter clockwise on their side, with EXIF saying how to turn them back.
    const { data, info } = await sharp(face).rotate(-90).raw().toBuffer({ resolveWithObject: true });
    const sideways = await sharp(data, {
      raw: { width: info.width, height: info.height, channels: info.channels },
    })
      .withMetadata({ orientation: 6 })
      .jpeg({ quality: 95 })
      .toBuffer();
    const store = new SqliteStore(file, { refreshMs: 0 });
    const apiStore = new SqliteApiStore(file);
    const bus = new MemoryBus({ capacity: 8 });
    const feed = new LiveFeed({
      bus,
      store,
      group: "api",
      replay: 10,
      snapshots: false,
      sinkMaxAgeMs: 60_000,
    });
    const app = await buildApi({
      config,
      store,
      apiStore,
      photos: photoEmbedder(vision),
      thresholdFor: (m) => thresholdFor(m, config),
      feed,
      metrics: new Metrics("api-real"),
    });
    try {
      const { key } = await new KeyService(apiStore, apiStore).create(
        { name: "t", role: "admin" },
        cliActor(),
      );
      const auth = { authorization: `Bearer ${key}` };
      const f = await form({ id: "ann", name: "Ann" }, [{ name: "sideways.jpg", bytes: sideways }]);
      const res = await app.inject({
        method: "POST",
        url: "/v1/people",
        payload: f.payload,
        headers: { ...auth, ...f.headers },
      });
      expect(res.statusCode, res.body).toBe(201);
      expect(res.json().photos[0]).toMatchObject({ ok: true, faceId: "ann:sideways.jpg" });
      const [stored] = await store.listFaces("ann");
      const upright = await photoEmbedder(vision).embedPhoto(face);
      if (!upright.ok) throw new Error(upright.reason);
      // Same face either way: the rotated upload was turned upright before detection.
      const [match] = await store.match(upright.modelId, [upright.vector], 1);
      expect(match?.[0]).toMatchObject({ faceId: stored!.faceId });
      expect(match![0]!.score).toBeGreaterThan(0.9);
      await store.addSightings(
        [sighting("seen", "door", Date.now() - 1000, upright.vector)].map((s) => ({
          ...s,
          modelId: upright.modelId,
        })),
      );
      const search = await form({}, [{ name: "q.jpg", bytes: sideways }]);
      const hits = await app.inject({
        method: "POST",
        url: "/v1/sightings/search",
        payload: search.payload,
        headers: { ...auth, ...search.headers },
      });
      expect(hits.statusCode).toBe(200);
      expect(hits.json().hits[0]).toMatchObject({ sighting: { id: "seen" }, samePerson: true });
    } finally {
      await app.close();
      apiStore.close();
      store.close();
    }
  });
});
