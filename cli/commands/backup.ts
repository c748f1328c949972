import type { Config } from "../../lib/config/index.ts";
import { adoptQdrantRecords, adoptSqliteApiRecords } from "../../lib/store/backup/adopt.ts";
import { backupDeployment, restoreDeployment } from "../../lib/store/backup/deployment.ts";
import { progress } from "../../lib/telemetry/progress.ts";

/** `vigil backup <dir>`: a line per table, collection and file as it is written; the manifest as JSON with --json. */
export async function backupCommand(config: Config, dir: string, opts: { json?: boolean }) {
  const say = opts.json ? () => {} : (line: string) => console.log(line);
  const manifest = await backupDeployment(config, dir, say, progress);
  if (opts.json) console.log(JSON.stringify(manifest, null, 2));
  else console.log(`backup written to ${dir} (manifest.json last)`);
}

/** `vigil restore <dir>`: into an empty deployment; exit 1 when crops the backup lists are gone from the store. */
export async function restoreCommand(
  config: Config,
  dir: string,
  opts: { json?: boolean },
): Promise<boolean> {
  const say = opts.json ? () => {} : (line: string) => console.log(line);
  const report = await restoreDeployment(config, dir, say, progress);
  if (opts.json) console.log(JSON.stringify(report, null, 2));
  else if (report.cropsMissing > 0)
    console.log(
      `restored; ${report.cropsMissing} of ${report.cropsListed} crops the backup lists are not in the crop store ` +
        `(their sightings and alerts show no face)`,
    );
  else console.log("restored");
  return report.cropsMissing === 0;
}

/**
 * `vigil records adopt [--sqlite file]`: what a deployment kept elsewhere, copied into its new records database:
 * the API's SQLite file (keys, audit log, webhooks) when given, and a Qdrant store's payload records.
 */
export async function adoptCommand(config: Config, opts: { json?: boolean; sqlite?: string }) {
  const say = opts.json ? () => {} : (line: string) => console.log(line);
  const out: Record<string, unknown> = {};
  if (opts.sqlite) {
    out.sqlite = await adoptSqliteApiRecords(config, opts.sqlite);
    say(`from ${opts.sqlite}: ${JSON.stringify(out.sqlite)}`);
  }
  if (config.store.kind === "qdrant") {
    out.qdrant = await adoptQdrantRecords(config, say);
    say(`from Qdrant: ${JSON.stringify(out.qdrant)}`);
  } else if (!opts.sqlite)
    throw new Error("nothing to adopt: the store is not Qdrant and no --sqlite file was given");
  if (opts.json) console.log(JSON.stringify(out, null, 2));
}
