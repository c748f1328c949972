import { spawn } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";

/** What a camera's rolling recording needs (`ingest.record` with the camera's overrides, resolved). */
export interface RecordSpec {
  /** The camera's own folder. */
  dir: string;
  segmentS: number;
  bufferS: number;
  preRollS: number;
  postRollS: number;
  keep: "alerts" | "sightings" | "all";
  /** With `keep: all`, how long the archive of the whole recording is kept. */
  keepDays: number;
  /**
   * The frames faces are found in (a live camera's letterbox size): what a record's box is measured in, so a
   * player can draw it over the recorded video, whatever its own size.
   */
  frame?: { width: number; height: number };
}

/**
 * Codecs a clip can carry as they arrive (MPEG-TS segments, then MP4 for browsers): H.264 and H.265. Anything
 * else (MJPEG from HTTP cameras) would have to be re-encoded, which costs what decoding does: not recorded.
 */
export const RECORDABLE_CODECS: ReadonlySet<string> = new Set(["h264", "hevc"]);

/** One finished segment: its file and the wall-clock span it covers (ms). */
export interface Segment {
  file: string;
  start: number;
  end: number;
}

/**
 * How many segments a session's list names: every segment the buffer can still hold, and a few to spare. The
 * segmenter splits at most once per `segmentS` of its schedule, so `bufferS / segmentS` segments cover the buffer
 * whatever the keyframe interval. Without a cap the list grew by a line a segment for as long as the camera stayed
 * connected (43,200 lines a day at 2 s), and every prune and clip read all of it.
 */
export function segmentListSize(spec: Pick<RecordSpec, "bufferS" | "segmentS">): number {
  return Math.ceil(spec.bufferS / spec.segmentS) + 8;
}

/**
 * The second output of a camera's decoder: the input's video stream copied into MPEG-TS segments with their list
 * (CSV: name, start and end in stream seconds, the newest `segmentListSize` of them; ffmpeg rewrites a capped list
 * to a temporary file and renames it, so a reader never sees it half written), named by `session` so a reconnect
 * never overwrites what an earlier connection recorded.
 */
export function recordingOutput(spec: RecordSpec, session: string): { target: string; options: string[] } {
  mkdirSync(spec.dir, { recursive: true });
  return {
    target: path.join(spec.dir, `${session}-%06d.ts`),
    options: [
      "-map",
      "0:v:0",
      "-c",
      "copy",
      "-f",
      "segment",
      "-segment_time",
      String(spec.segmentS),
      "-segment_format",
      "mpegts",
      "-reset_timestamps",
      "1",
      "-segment_list",
      path.join(spec.dir, `${session}.csv`),
      "-segment_list_type",
      "csv",
      "-segment_list_size",
      String(segmentListSize(spec)),
    ],
  };
}

/**
 * Deletes what one session of `recordingOutput` wrote (its list, its segments, a list it was rewriting): a
 * connection whose video turned out not to be copyable leaves nothing a clip could be cut from.
 */
export function discardSession(spec: RecordSpec, session: string) {
  let names: string[];
  try {
    names = readdirSync(spec.dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (name.startsWith(`${session}-`) || name.startsWith(`${session}.csv`))
      rmSync(path.join(spec.dir, name), { force: true });
  }
}

/**
 * The wall-clock span of each finished segment in `dir`. A segment's file is last written when it ends, so its
 * mtime is its end; its start is that less its duration from the list (stream time, exact). Segments the list
 * names but that were pruned are skipped, and the one being written is not listed yet.
 */
export function listSegments(dir: string): Segment[] {
  const out: Segment[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const list of names.filter((n) => n.endsWith(".csv"))) {
    for (const line of readFileSync(path.join(dir, list), "utf8").split("\n")) {
      const [name, s, e] = line.split(",");
      if (!name || s === undefined || e === undefined) continue;
      const file = path.join(dir, name);
      let end: number;
      try {
        end = statSync(file).mtimeMs;
      } catch {
        continue;
      }
      out.push({ file, start: end - (Number(e) - Number(s)) * 1000, end });
    }
  }
  return out.sort((a, b) => a.start - b.start);
}

/** The segments that hold any of [from, to]. */
export function segmentsBetween(segments: Segment[], from: number, to: number): Segment[] {
  return segments.filter((s) => s.end > from && s.start < to);
}

/**
 * Deletes what no clip can need any more: segments that ended before `before` and are not `pinned`, files of
 * sessions whose list is gone (a decoder killed before it wrote one) once they are that old, and lists whose
 * segments are all gone. Returns how many segments went.
 */
export function pruneSegments(dir: string, before: number, pinned: (file: string) => boolean = () => false) {
  let removed = 0;
  const listed = new Set<string>();
  for (const s of listSegments(dir)) {
    listed.add(s.file);
    if (s.end < before && !pinned(s.file)) {
      rmSync(s.file, { force: true });
      removed++;
    }
  }
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  const kept: string[] = [];
  for (const name of names.filter((n) => n.endsWith(".ts"))) {
    const file = path.join(dir, name);
    // Unlisted: being written now (young), fallen off a capped list, or left by a session that ended without
    // listing it (old).
    const old =
      !listed.has(file) && (statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? Infinity) < before;
    if (old && !pinned(file)) {
      rmSync(file, { force: true });
      removed++;
    } else kept.push(name);
  }
  // Lists whose segments are all gone, and the temporary list of a decoder killed while it rewrote its own.
  const sessions = new Set(kept.map((n) => n.replace(/-\d+\.ts$/, "")));
  for (const name of names.filter((n) => /\.csv(\.tmp)?$/.test(n))) {
    if (!sessions.has(name.replace(/\.csv(\.tmp)?$/, ""))) rmSync(path.join(dir, name), { force: true });
  }
  return removed;
}

export interface Clip {
  /** MP4 (H.264/H.265 as recorded, `faststart` so a browser plays it while it loads). */
  data: Uint8Array;
  /** Wall-clock span it covers, ms: its first frame is at `start`. */
  start: number;
  end: number;
}

/**
 * The segments joined into one MP4 at `out` without re-encoding (ffmpeg's concat demuxer). Whole segments, so a
 * clip starts on a keyframe at or before the time asked for. A segment that cannot be opened (pruned or archived
 * since it was listed) fails the join (`-xerror`) rather than ending the video there with success.
 */
export async function joinSegmentsTo(
  segments: Segment[],
  out: string,
): Promise<{ start: number; end: number }> {
  if (segments.length === 0) throw new Error("no recorded video covers that time");
  const list = `${out}.txt`;
  writeFileSync(list, segments.map((s) => `file '${s.file.replace(/'/g, "'\\''")}'\n`).join(""));
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(
        "ffmpeg",
        [
          ...["-nostdin", "-loglevel", "error", "-xerror", "-f", "concat", "-safe", "0", "-i", list],
          ...["-c", "copy", "-movflags", "+faststart", "-f", "mp4", "-y", out],
        ],
        { stdio: ["ignore", "ignore", "pipe"] },
      );
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.once("error", reject);
      child.once("exit", (code) =>
        code === 0
          ? resolve()
          : reject(new Error(`ffmpeg could not join the clip: ${stderr.trim() || code}`)),
      );
    });
    return { start: segments[0]!.start, end: segments.at(-1)!.end };
  } finally {
    rmSync(list, { force: true });
  }
}

/** joinSegmentsTo through a scratch file, read back: a clip (seconds of video) for the clip store. */
export async function joinSegments(segments: Segment[], scratch: string): Promise<Clip> {
  mkdirSync(scratch, { recursive: true });
  const out = path.join(
    scratch,
    `clip-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}.mp4`,
  );
  try {
    const span = await joinSegmentsTo(segments, out);
    return { data: new Uint8Array(readFileSync(out)), ...span };
  } finally {
    rmSync(out, { force: true });
  }
}

/**
 * The input's video codec from ffmpeg's stderr, read line by line as it comes: the first `Stream … Video: <codec>`
 * under `Input #0` (the outputs' streams are listed the same way, later).
 */
export class InputCodecReader {
  private inInput = false;
  codec: string | undefined;

  line(l: string) {
    if (this.codec) return;
    if (/^Input #0/.test(l)) this.inInput = true;
    else if (/^(Output #|Stream mapping)/.test(l)) this.inInput = false;
    else if (this.inInput) {
      const m = /Stream #0:\d+.*?: Video: (\w+)/.exec(l);
      if (m) this.codec = m[1]!.toLowerCase();
    }
  }
}

// keep: all moves a segment leaving the buffer into an archive of hour folders (UTC), its wall-clock span in its
// name: listing a span reads one folder an hour, and expiry deletes whole folders, however many days are kept
// (a week at 2 s is 300,000 segments a camera; the buffer's own folder stays as small as without the archive).
const ARCHIVE = "archive";
const HOUR = 3_600_000;
const hourFolder = (ts: number) => new Date(Math.floor(ts / HOUR) * HOUR).toISOString().slice(0, 13);

/** Moves finished segments into the camera's archive (keep: all), named by their span. */
export function archiveSegments(dir: string, segments: Segment[]): number {
  let moved = 0;
  for (const s of segments) {
    const folder = path.join(dir, ARCHIVE, hourFolder(s.start));
    mkdirSync(folder, { recursive: true });
    try {
      renameSync(
        s.file,
        path.join(folder, `${Math.round(s.start)}_${Math.round(s.end)}_${path.basename(s.file)}`),
      );
      moved++;
    } catch (err) {
      // Gone since it was listed (an earlier pass, or a prune beside it): nothing to move.
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
  return moved;
}

/** A segment's name as ffmpeg wrote it, whether it is still in the buffer or archived under its span. */
export const segmentName = (file: string) => path.basename(file).replace(/^\d+_\d+_/, "");

/** The archived segments that hold any of [from, to], in time order. */
export function archivedSegments(dir: string, from: number, to: number): Segment[] {
  const out: Segment[] = [];
  // A segment is filed under the hour it starts in, so one that ends in [from, to] may start an hour earlier.
  for (let hour = Math.floor(from / HOUR) * HOUR - HOUR; hour <= to; hour += HOUR) {
    const folder = path.join(dir, ARCHIVE, hourFolder(hour));
    let names: string[];
    try {
      names = readdirSync(folder);
    } catch {
      continue;
    }
    for (const name of names) {
      const m = /^(\d+)_(\d+)_.+\.ts$/.exec(name);
      if (!m) continue;
      const seg = { file: path.join(folder, name), start: Number(m[1]), end: Number(m[2]) };
      if (seg.end > from && seg.start < to) out.push(seg);
    }
  }
  return out.sort((a, b) => a.start - b.start);
}

/** Deletes the archive's hours that ended before `before`. Returns how many hour folders went. */
export function pruneArchive(dir: string, before: number): number {
  let names: string[];
  try {
    names = readdirSync(path.join(dir, ARCHIVE));
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    const start = Date.parse(`${name}:00:00Z`);
    if (Number.isFinite(start) && start + HOUR < before) {
      rmSync(path.join(dir, ARCHIVE, name), { recursive: true, force: true });
      removed++;
    }
  }
  return removed;
}

/**
 * A camera's recording folder as ingest keeps it: pruned to `bufferS` except segments a clip being cut has pinned;
 * with keep: all, what leaves the buffer goes to the archive, which is pruned to `keepDays`.
 */
export class CameraRecording {
  private readonly pins = new Map<string, number>();
  /**
   * Why this camera's video is not recorded although it was asked to be (a file, a codec that cannot be copied):
   * the clips its records call for say so rather than wait for video that will never be there.
   */
  off: string | undefined;

  constructor(
    readonly spec: RecordSpec,
    private readonly clock: () => number = Date.now,
  ) {}

  segments(): Segment[] {
    return listSegments(this.spec.dir);
  }

  /** Keeps `segments` from pruning until `unpin`: a clip waiting for its post-roll holds its pre-roll. */
  pin(segments: Segment[]) {
    for (const s of segments) this.pins.set(s.file, (this.pins.get(s.file) ?? 0) + 1);
  }

  unpin(segments: Segment[]) {
    for (const s of segments) {
      const n = (this.pins.get(s.file) ?? 0) - 1;
      if (n > 0) this.pins.set(s.file, n);
      else this.pins.delete(s.file);
    }
  }

  prune(): number {
    const now = this.clock();
    const edge = now - this.spec.bufferS * 1000;
    if (this.spec.keep === "all") {
      // Before the buffer's prune, which would delete them: a listed segment leaves the buffer while its list
      // still names it (the list holds a few segments more than the buffer).
      const listed = this.segments();
      archiveSegments(
        this.spec.dir,
        listed.filter((s) => s.end < edge && !this.pins.has(s.file)),
      );
      // Unlisted and old: a killed decoder's last segment, or one that fell off the list while a clip held it.
      // Kept too, its span from its mtime (its end) and the segment length (its list, with the exact one, is gone).
      const names = new Set(listed.map((s) => s.file));
      const strays: Segment[] = [];
      let files: string[] = [];
      try {
        files = readdirSync(this.spec.dir).filter((n) => n.endsWith(".ts"));
      } catch {
        // Nothing recorded yet.
      }
      for (const name of files) {
        const file = path.join(this.spec.dir, name);
        const end =
          names.has(file) || this.pins.has(file)
            ? undefined
            : statSync(file, { throwIfNoEntry: false })?.mtimeMs;
        if (end !== undefined && end < edge)
          strays.push({ file, start: end - this.spec.segmentS * 1000, end });
      }
      archiveSegments(this.spec.dir, strays);
      pruneArchive(this.spec.dir, now - this.spec.keepDays * 86_400_000);
    }
    return pruneSegments(this.spec.dir, edge, (f) => this.pins.has(f));
  }

  /**
   * The recorded segments (in the buffer, and archived with keep: all) that hold any of [from, to], in time order.
   * The buffer is read first: a segment archived between the two reads is then found in the archive, not lost.
   */
  between(from: number, to: number): Segment[] {
    const buffered = segmentsBetween(this.segments(), from, to);
    if (this.spec.keep !== "all") return buffered;
    const names = new Set(buffered.map((s) => segmentName(s.file)));
    // Nothing older than keepDays is kept: no need to look through the hours before it.
    const oldest = Math.max(from, this.clock() - this.spec.keepDays * 86_400_000 - HOUR);
    const archived = archivedSegments(this.spec.dir, oldest, to).filter(
      (s) => !names.has(segmentName(s.file)),
    );
    return [...archived, ...buffered].sort((a, b) => a.start - b.start);
  }
}
