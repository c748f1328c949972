import { writeFileSync } from "node:fs";
import path from "node:path";
import { audited } from "../../lib/api/audit.ts";
import type { Config } from "../../lib/config/index.ts";
import { parseTime } from "../../lib/history/timeline.ts";
import { CameraRecording, joinSegments, type Clip } from "../../lib/media/recording.ts";
import { NotFoundError } from "../../lib/store/errors.ts";
import { recordRoot, resolveCamera } from "../../services/ingest/camera.ts";
import { UsageError } from "../context.ts";

export interface RecordingOptions {
  camera: string;
  from: string;
  to: string;
  out: string;
}

const iso = (ts: number) => new Date(ts).toISOString();

/**
 * `vigil recording --camera <id> --from <t> --to <t> --out <file.mp4>`: any span of what a camera recorded, joined
 * without re-encoding, from the disk of the ingest that records it (run it there): the whole recording for
 * `record.keep: all`, otherwise only the rolling buffer. Audited as an export: it is footage leaving the system.
 */
export async function recordingCommand(config: Config, opts: RecordingOptions): Promise<Clip> {
  const camera = config.cameras.find((c) => c.id === opts.camera);
  if (!camera) throw new UsageError(`no camera ${opts.camera} in the config`);
  const spec = resolveCamera(camera, config.ingest, recordRoot(config)).record;
  if (!spec) throw new UsageError(`camera ${opts.camera} is not recorded (its record.keep is off)`);
  const from = parseTime(opts.from);
  const to = parseTime(opts.to);
  if (!(to > from)) throw new UsageError(`--to (${iso(to)}) must be after --from (${iso(from)})`);
  return audited(
    config,
    {
      action: "export.recording",
      target: opts.camera,
      summary: { from, to, out: opts.out },
      result: (clip) => ({ start: clip.start, end: clip.end, bytes: clip.data.length }),
    },
    async () => {
      const segments = new CameraRecording(spec).between(from, to);
      if (segments.length === 0)
        throw new NotFoundError(
          `no video of camera ${opts.camera} is kept between ${iso(from)} and ${iso(to)}: ` +
            (spec.keep === "all"
              ? `its recording is kept for ${spec.keepDays} days (record.keepDays), from when this ingest recorded it`
              : `only its last ${spec.bufferS} s are kept (record.keep: all keeps the whole recording)`),
        );
      const clip = await joinSegments(segments, path.join(recordRoot(config), ".joining"));
      writeFileSync(opts.out, clip.data);
      return clip;
    },
  );
}
