import { execFileSync } from "node:child_process";
import type { Config } from "../../lib/config/index.ts";
import type { Vision } from "../../lib/vision/inference/vision.ts";
import type { AnalyzeOptions } from "../../lib/vision/inference/face-analyzer.ts";
import type { Yuv420Image } from "../../lib/vision/pixels/yuv.ts";
import { progress } from "../../lib/telemetry/progress.ts";
import { UsageError } from "../context.ts";

export interface SmallFacesRow {
  detection: string;
  facesPerFrame: number;
  /** Of those, faces live video's quality gate passes (looks the match stage gets). */
  liveLooksPerFrame: number;
  /** Of those, faces that pass the photo gate too. */
  photoGradePerFrame: number;
  /** Detection, alignment and quality of one frame, on one thread (process CPU time). */
  cpuMsPerFrame: number;
}

export interface SmallFacesReport {
  video: string;
  width: number;
  height: number;
  frames: number;
  rows: SmallFacesRow[];
}

/** Frames of `video` at `fps`, decoded by ffmpeg to yuv420p at `width` (aspect kept), as live frames are. */
function framesOf(video: string, width: number, fps: number): Yuv420Image[] {
  const probe = execFileSync("ffprobe", [
    ...["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height"],
    ...["-of", "csv=p=0", video],
  ])
    .toString()
    .trim()
    .split(",")
    .map(Number);
  const [w, h] = probe as [number, number];
  if (!w || !h) throw new UsageError(`${video} has no video stream`);
  const height = Math.round((width * h) / w / 2) * 2;
  const raw = execFileSync(
    "ffmpeg",
    [
      ...["-v", "error", "-i", video, "-vf", `fps=${fps},scale=${width}:${height}`],
      ...["-pix_fmt", "yuv420p", "-f", "rawvideo", "-"],
    ],
    { maxBuffer: 2 ** 31 },
  );
  const size = (width * height * 3) / 2;
  const out: Yuv420Image[] = [];
  for (let o = 0; o + size <= raw.length; o += size)
    out.push({ format: "yuv420p", width, height, data: new Uint8Array(raw.subarray(o, o + size)) });
  return out;
}

/**
 * `vigil bench small-faces`: what each way of finding small faces finds on a crowd clip, and what it costs per
 * frame on one inference thread (a detect worker's share): the resized frame at several input sizes, a second
 * full-resolution pass around the faces found small, and tiles. Each is run over every frame twice; counts
 * are from the first round, CPU from both.
 */
export async function benchSmallFaces(
  config: Config,
  vision: Vision,
  options: { video: string; width: number; fps: number },
): Promise<SmallFacesReport> {
  const frames = framesOf(options.video, options.width, options.fps);
  if (frames.length === 0) throw new UsageError(`no frames decoded from ${options.video}`);
  const { width, height } = frames[0]!;
  const plan = { ...config.detect.smallFaces, nmsIou: config.detect.nmsIou };
  const runs: [string, AnalyzeOptions][] = [
    ...[640, 960, 1280]
      .filter((s) => s < Math.max(width, height))
      .map((s): [string, AnalyzeOptions] => [`maxSide ${s}`, { maxSide: s }]),
    [`full resolution (${Math.max(width, height)})`, { maxSide: Math.max(width, height) }],
    [
      `640 + second pass (${plan.maxRegions} × ${plan.region}² around faces < ${plan.below} px)`,
      { maxSide: 640, smallFaces: { ...plan, mode: "second-pass" } },
    ],
    [
      `tiles ${plan.tiles.cols}×${plan.tiles.rows} at full resolution`,
      { maxSide: 640, smallFaces: { ...plan, mode: "tiles" } },
    ],
  ];
  const bar = progress("bench small-faces", runs.length * frames.length * 2);
  const rows: SmallFacesRow[] = [];
  // One untimed round first: session warm-up and tensor allocation are not a frame's cost.
  for (const [, o] of runs) await vision.analyzer.analyze(frames[0]!, o);
  for (const [detection, o] of runs) {
    let faces = 0,
      live = 0,
      photo = 0,
      cpuMs = 0;
    for (let round = 0; round < 2; round++) {
      for (const frame of frames) {
        const before = process.cpuUsage();
        const found = await vision.analyzer.analyze(frame, o);
        const used = process.cpuUsage(before);
        cpuMs += (used.user + used.system) / 1000;
        bar.tick();
        if (round > 0) continue;
        faces += found.length;
        live += found.filter((f) => f.quality.liveReasons.length === 0).length;
        photo += found.filter((f) => f.quality.reasons.length === 0).length;
      }
    }
    const n = frames.length;
    rows.push({
      detection,
      facesPerFrame: faces / n,
      liveLooksPerFrame: live / n,
      photoGradePerFrame: photo / n,
      cpuMsPerFrame: cpuMs / (2 * n),
    });
  }
  bar.done();
  return { video: options.video, width, height, frames: frames.length, rows };
}
