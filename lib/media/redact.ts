import { spawn } from "node:child_process";
import { cosine, type Box } from "../geometry/index.ts";
import type { Embedder } from "../vision/inference/embedder.ts";
import type { FrameAnalyzer } from "../vision/inference/face-analyzer.ts";
import type { Yuv420Image } from "../vision/pixels/yuv.ts";
import { probeVideo, startDecoder } from "./ffmpeg.ts";

export interface RedactOptions {
  vision: { analyzer: FrameAnalyzer; embedder: Embedder };
  /** The person who stays visible: their reference vectors (enrolled faces, or an unknown identity's centroid). */
  person: Float32Array[];
  /** A face at or above this similarity to any of `person` is theirs (the model's operating threshold). */
  threshold: number;
  /** Detection size (`detect.maxSide`). */
  maxSide: number;
  /**
   * Frames of look-ahead: a face lost for up to this many frames between two detections is blurred where its
   * track says it was (interpolated), and one lost for good stays blurred this long where it was last seen.
   */
  windowFrames?: number;
  /** A track's face is embedded again this often (frames), in case another face took its place. */
  recheckFrames?: number;
  /** x264 quality of the re-encoded video (lower is better). */
  crf?: number;
  /** Stops the redaction at the next frame, its ffmpeg processes killed and the error thrown. */
  signal?: AbortSignal;
}

export interface RedactResult {
  frames: number;
  /** Video seconds written. */
  seconds: number;
  /** Faces detected, over all frames. */
  faces: number;
  /** Face boxes blurred, over all frames: detected others, and boxes carried across missed detections. */
  blurred: number;
  /** Of those, boxes from a track where detection missed the face. */
  interpolated: number;
  /** Frames where the person was found (kept visible). */
  personFrames: number;
  width: number;
  height: number;
  fps: number;
}

export interface FaceTrack {
  person: boolean;
  checkedAt: number;
  /** Frame → box where the face was detected. */
  seen: Map<number, Box>;
  last: number;
}

/**
 * Faces followed from frame to frame by overlap, and where each non-person face must be masked in a frame:
 * where it was detected, between two detections up to `window` frames apart (interpolated), or for `window`
 * frames where it was last seen once it is lost.
 */
export class FaceTracks {
  private readonly tracks: FaceTrack[] = [];

  constructor(private readonly window: number) {}

  /** The faces detected in frame `index`, each given to the live track it overlaps most (or a new one). */
  observe(index: number, boxes: Box[]): FaceTrack[] {
    const live = this.tracks.filter((t) => t.last >= index - this.window - 1);
    const claimed = new Set<FaceTrack>();
    return boxes.map((box) => {
      let best: FaceTrack | undefined;
      let bestIou = 0.3;
      for (const t of live) {
        if (claimed.has(t)) continue;
        const overlap = iou(t.seen.get(t.last)!, box);
        if (overlap > bestIou) [best, bestIou] = [t, overlap];
      }
      const track = best ?? {
        person: false,
        checkedAt: -Infinity,
        seen: new Map<number, Box>(),
        last: index,
      };
      if (!best) this.tracks.push(track);
      claimed.add(track);
      track.seen.set(index, box);
      track.last = index;
      return track;
    });
  }

  /** Boxes to mask in frame `j`, from every track that is not the person's; `carried`: detection missed it. */
  masksAt(j: number): { box: Box; carried: boolean }[] {
    const out: { box: Box; carried: boolean }[] = [];
    for (const t of this.tracks) {
      if (t.person) continue;
      const here = t.seen.get(j);
      if (here) {
        out.push({ box: here, carried: false });
        continue;
      }
      let before: number | undefined;
      let after: number | undefined;
      for (const f of t.seen.keys()) {
        if (f < j && (before === undefined || f > before)) before = f;
        if (f > j && (after === undefined || f < after)) after = f;
      }
      if (before === undefined) continue;
      if (after !== undefined && after - before <= this.window + 1)
        out.push({
          box: lerp(t.seen.get(before)!, t.seen.get(after)!, (j - before) / (after - before)),
          carried: true,
        });
      else if (after === undefined && j - before <= this.window)
        out.push({ box: t.seen.get(before)!, carried: true });
    }
    return out;
  }

  /** Forgets tracks no frame from `index` on can need. */
  prune(index: number) {
    for (let k = this.tracks.length - 1; k >= 0; k--)
      if (this.tracks[k]!.last < index - this.window) this.tracks.splice(k, 1);
  }
}

const iou = (a: Box, b: Box) => {
  const x = Math.max(0, Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x));
  const y = Math.max(0, Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y));
  const inter = x * y;
  return inter / (a.width * a.height + b.width * b.height - inter || 1);
};

const lerp = (a: Box, b: Box, t: number): Box => ({
  x: a.x + (b.x - a.x) * t,
  y: a.y + (b.y - a.y) * t,
  width: a.width + (b.width - a.width) * t,
  height: a.height + (b.height - a.height) * t,
});

/**
 * Masks `box` (grown by a quarter each way, for hair and ears) in a yuv420p frame with one flat patch of its own
 * mean colour, in all three planes: irreversible, and nothing a detector takes for a face (a detector still finds
 * faces in a pixelation of five blocks a side, tried on the sample footage).
 */
export function maskFace(frame: Yuv420Image, box: Box) {
  const { width: W, height: H, data } = frame;
  const grow = 0.25;
  const x0 = Math.max(0, Math.floor(box.x - box.width * grow)) & ~1;
  const y0 = Math.max(0, Math.floor(box.y - box.height * grow)) & ~1;
  const x1 = Math.min(W, Math.ceil(box.x + box.width * (1 + grow)));
  const y1 = Math.min(H, Math.ceil(box.y + box.height * (1 + grow)));
  if (x1 <= x0 || y1 <= y0) return;
  const flat = (base: number, stride: number, ax: number, ay: number, bx: number, by: number) => {
    let sum = 0;
    for (let y = ay; y < by; y++) for (let x = ax; x < bx; x++) sum += data[base + y * stride + x]!;
    const mean = Math.round(sum / ((bx - ax) * (by - ay)));
    for (let y = ay; y < by; y++) data.fill(mean, base + y * stride + ax, base + y * stride + bx);
  };
  flat(0, W, x0, y0, x1, y1);
  const cw = W >> 1;
  const ch = H >> 1;
  const [cx0, cy0, cx1, cy1] = [x0 >> 1, y0 >> 1, Math.min(cw, (x1 + 1) >> 1), Math.min(ch, (y1 + 1) >> 1)];
  flat(W * H, cw, cx0, cy0, cx1, cy1);
  flat(W * H + cw * ch, cw, cx0, cy0, cx1, cy1);
}

/**
 * Re-encodes `input` with every face but the person's masked in every frame. Each frame is detected (not only
 * sampled ones); faces are followed in tracks by overlap, and a track's face is compared with the person when it
 * appears and every `recheckFrames` after. A face the detector misses for a few frames is blurred where its track
 * puts it (between the detections either side), and one that disappears stays blurred a window longer where it
 * was last seen: no face of another shows for a frame because detection blinked.
 */
export async function redactVideo(input: string, output: string, o: RedactOptions): Promise<RedactResult> {
  const window = o.windowFrames ?? 12;
  const recheck = o.recheckFrames ?? 15;
  const probe = await probeVideo(input);
  const width = probe.width & ~1;
  const height = probe.height & ~1;
  const fps = probe.fps ?? 25;
  const decoder = startDecoder(input, { fps, width, height });
  const encoder = spawn(
    "ffmpeg",
    [
      ...["-nostdin", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p"],
      ...["-s", `${width}x${height}`, "-r", String(fps), "-i", "-"],
      ...["-c:v", "libx264", "-preset", "veryfast", "-crf", String(o.crf ?? 23), "-pix_fmt", "yuv420p"],
      ...["-movflags", "+faststart", "-y", output],
    ],
    { stdio: ["pipe", "ignore", "pipe"] },
  );
  let encoderError = "";
  encoder.stderr.on("data", (d: Buffer) => (encoderError += d.toString()));
  const encoded = new Promise<void>((resolve, reject) => {
    encoder.once("error", reject);
    encoder.once("exit", (code) =>
      code === 0
        ? resolve()
        : reject(new Error(`ffmpeg could not encode ${output}: ${encoderError.trim() || code}`)),
    );
  });
  const write = (bytes: Uint8Array) =>
    new Promise<void>((resolve, reject) =>
      encoder.stdin.write(bytes, (err) => (err ? reject(err) : resolve())),
    );

  const result: RedactResult = {
    frames: 0,
    seconds: 0,
    faces: 0,
    blurred: 0,
    interpolated: 0,
    personFrames: 0,
    width,
    height,
    fps,
  };
  const tracks = new FaceTracks(window);
  const pending: { index: number; frame: Yuv420Image; release: () => void }[] = [];

  const flush = async (upTo: number) => {
    while (pending.length && pending[0]!.index <= upTo) {
      const { index, frame, release } = pending.shift()!;
      for (const { box, carried } of tracks.masksAt(index)) {
        maskFace(frame, box);
        result.blurred++;
        if (carried) result.interpolated++;
      }
      await write(frame.data);
      release();
      result.frames++;
      tracks.prune(index);
    }
  };

  try {
    for await (const decoded of decoder.frames) {
      if (o.signal?.aborted) {
        decoded.release();
        o.signal.throwIfAborted();
      }
      const index = decoded.index;
      const frame: Yuv420Image = { format: "yuv420p", width, height, data: decoded.data };
      const faces = await o.vision.analyzer.analyze(frame, { maxSide: o.maxSide });
      result.faces += faces.length;
      const assigned = tracks.observe(
        index,
        faces.map((f) => f.detection.box),
      );
      const toCheck = faces.flatMap((f, i) => (index - assigned[i]!.checkedAt >= recheck ? [i] : []));
      if (toCheck.length) {
        const vectors = await o.vision.embedder.embed(toCheck.map((i) => faces[i]!.crop));
        toCheck.forEach((i, k) => {
          const t = assigned[i]!;
          t.person = o.person.some((p) => cosine(p, vectors[k]!) >= o.threshold);
          t.checkedAt = index;
        });
      }
      if (assigned.some((t) => t.person)) result.personFrames++;
      pending.push({ index, frame, release: decoded.release });
      await flush(index - window);
    }
    await flush(Infinity);
    encoder.stdin.end();
    await encoded;
    const exit = await decoder.exited;
    if (exit.code !== 0)
      throw new Error(`ffmpeg could not decode ${input}: ${exit.stderr.slice(-3).join(" ")}`);
  } catch (err) {
    // The encoder dies of the kill: that is not a second failure to report (nor an unhandled rejection).
    encoded.catch(() => undefined);
    decoder.kill("SIGKILL");
    encoder.kill("SIGKILL");
    throw err;
  }
  result.seconds = result.frames / fps;
  return result;
}
