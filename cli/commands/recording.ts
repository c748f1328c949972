import { renameSync, rmSync, statSync } from "node:fs";
import { audited } from "../../lib/api/audit.ts";
import { clippedRecords, type Config } from "../../lib/config/index.ts";
import { parseTime } from "../../lib/history/timeline.ts";
import { CameraRecording, joinSegmentsTo, type Segment } from "../../lib/media/recording.ts";
import { NotFoundError } from "../../lib/store/errors.ts";
import { recordRoot, resolveCamera } from "../../services/ingest/camera.ts";
import { UsageError } from "../context.ts";

export interface RecordingOptions {
  camera: string;
  from: string;
  to: string;
  out: string;
}

export interface RecordingCut {
  file: string;
  /** The wall-clock span written (whole segments: from a keyframe at or before `--from`). */
  start: number;
  end: number;
  bytes: number;
  /** Where the camera's video stops and starts again inside the span (it was down, or ingest was). */
  gaps: { from: number; to: number }[];
}

const iso = (ts: number) => new Date(ts).toISOString();

/** Holes between consecutive segments longer than a second: the concat join closes them without a trace. */
export function gapsIn(segments: Segment[]): { from: number; to: number }[] {
  return segments.slice(1).flatMap((s, i) => {
    const before = segments[i]!.end;
    return s.start - before > 1000 ? [{ from: before, to: s.start }] : [];
  });
}

/**
 * `vigil recording --camera <id> --from <t> --to <t> --out <file.mp4>`: any span of what a camera recorded, joined
 * without re-encoding, from the disk of the ingest that records it (run it there): the whole recording for
 * `record.keep: all`, otherwise only the rolling buffer. Footage leaving the system is audited as an export, and
 * fails closed: the file appears at `--out` only once the audit entry is written.
 */
export async function recordingCommand(config: Config, opts: RecordingOptions): Promise<RecordingCut> {
  const camera = config.cameras.find((c) => c.id === opts.camera);
  if (!camera) throw new UsageError(`no camera ${opts.camera} in the config`);
  const why = clippedRecords(config).why("alerts", camera.id);
  const spec = resolveCamera(camera, config.ingest, recordRoot(config)).record;
  if (why || !spec) throw new UsageError(why ?? `camera ${camera.id} is not recorded`);
  const from = parseTime(opts.from);
  const to = parseTime(opts.to);
  if (!(to > from)) throw new UsageError(`--to (${iso(to)}) must be after --from (${iso(from)})`);
  const partial = `${opts.out}.partial`;
  const recording = new CameraRecording(spec);
  try {
    const cut = await audited(
      config,
      {
        action: "export.recording",
        target: camera.id,
        summary: { from, to, out: opts.out },
        result: (c: RecordingCut) => ({ start: c.start, end: c.end, bytes: c.bytes, gaps: c.gaps.length }),
      },
      async () => {
        // Ingest prunes (and archives) as it records: a segment listed here may move before ffmpeg opens it,
        // which fails the join; listed again, it is found where it went.
        for (let attempt = 1; ; attempt++) {
          const segments = recording.between(from, to);
          if (segments.length === 0)
            throw new NotFoundError(
              `no video of camera ${camera.id} is kept between ${iso(from)} and ${iso(to)}: ` +
                (spec.keep === "all"
                  ? `its whole recording is kept for ${spec.keepDays} days (record.keepDays), from when this ingest recorded it`
                  : `only its last ${spec.bufferS} s are kept (record.keep: all keeps the whole recording)`),
            );
          try {
            const span = await joinSegmentsTo(segments, partial);
            return { file: opts.out, ...span, bytes: statSync(partial).size, gaps: gapsIn(segments) };
          } catch (err) {
            if (attempt >= 3) throw err;
          }
        }
      },
    );
    renameSync(partial, opts.out);
    return cut;
  } finally {
    rmSync(partial, { force: true });
  }
}
