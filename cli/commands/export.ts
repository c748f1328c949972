import { audited, defined } from "../../lib/api/audit.ts";
import type { Config } from "../../lib/config/index.ts";
import { exportPerson, type ExportManifest } from "../../lib/export/person-export.ts";
import { parseTime } from "../../lib/history/timeline.ts";
import { ClipStore } from "../../lib/store/clip-store.ts";
import { InvalidInputError, NotFoundError } from "../../lib/store/errors.ts";
import { openCropStore, openStore } from "../../lib/store/open-store.ts";
import { progress } from "../../lib/telemetry/progress.ts";
import { thresholdFor } from "../../lib/vision/models/calibration.ts";
import { UsageError, visionFor } from "../context.ts";

export interface ExportOptions {
  person: string;
  from?: string;
  to?: string;
  redact: string;
  out: string;
  json?: boolean;
}

/**
 * `vigil export --person <id> --out <dir> [--from --to] [--redact others|none]`: the person's visits as video
 * for handing over, every other face masked, with a manifest of the files' hashes. Audited as an export.
 */
export async function exportCommand(config: Config, opts: ExportOptions): Promise<ExportManifest> {
  if (opts.redact !== "others" && opts.redact !== "none")
    throw new UsageError(`--redact is others (every face but theirs masked) or none, not ${opts.redact}`);
  const redact = opts.redact;
  const request = {
    person: opts.person,
    from: opts.from ? parseTime(opts.from) : undefined,
    to: opts.to ? parseTime(opts.to) : undefined,
    out: opts.out,
    redact,
  } as const;
  const store = openStore(config);
  const crops = openCropStore(config);
  let bar: ReturnType<typeof progress> | undefined;
  try {
    const vision = redact === "others" ? await visionFor(config) : undefined;
    const manifest = await audited(
      config,
      {
        action: "export.person",
        target: opts.person,
        summary: defined({ from: request.from, to: request.to, redact, out: opts.out }),
        result: (m) => ({ files: m.files.length, missing: m.missing.length }),
      },
      () =>
        exportPerson(
          {
            store,
            clips: new ClipStore(crops),
            // `none` never runs the models: the export only copies the clips.
            ...(vision ? { vision } : {}),
            threshold: vision ? thresholdFor(vision.embedder.modelId, config) : 1,
            maxSide: config.detect.maxSide,
            progress: (done, total) => {
              bar ??= progress(`export of ${opts.person}`, total);
              bar.tick();
              if (done === total) bar.done();
            },
          },
          request,
        ),
    );
    if (opts.json) console.log(JSON.stringify(manifest));
    else {
      for (const f of manifest.files)
        console.log(
          `${f.file}  ${f.cameraId}  ${new Date(f.start).toISOString()}  ${f.bytes} bytes  sha256 ${f.sha256}${f.redaction ? `  ${f.redaction.blurred} face box(es) masked in ${f.redaction.frames} frames` : ""}`,
        );
      for (const m of manifest.missing)
        console.log(
          `no clip of the visit ${m.sighting} on ${m.cameraId} at ${new Date(m.startTs).toISOString()}: ${m.reason}`,
        );
      if (manifest.cpuPerVideoSecond !== null)
        console.log(
          `redaction: ${manifest.cpuPerVideoSecond.toFixed(2)} CPU seconds per second of video (${(1 / manifest.cpuPerVideoSecond).toFixed(2)}× real time per core)`,
        );
      console.log(`manifest: ${opts.out}/manifest.json`);
    }
    return manifest;
  } catch (err) {
    if (err instanceof NotFoundError || err instanceof InvalidInputError) throw new UsageError(err.message);
    throw err;
  } finally {
    store.close();
    crops.close();
  }
}
