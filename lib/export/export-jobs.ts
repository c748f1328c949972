import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { CropStore } from "../store/crop-store.ts";
import {
  exportPerson,
  planExport,
  type ExportDeps,
  type ExportManifest,
  type ExportRequest,
} from "./person-export.ts";

export type ExportJob =
  | { id: string; state: "running"; done: number; total: number | null; startedTs: number }
  | { id: string; state: "failed"; error: string; startedTs: number }
  | { id: string; state: "done"; manifest: ExportManifest };

/** An export's objects in the crop store: `exports/<id>/<file>`, the manifest last. */
const key = (id: string, file: string) => `exports/${id}/${file}`;
const ID = /^[0-9a-f]{16}$/;

/**
 * Exports run in the background of an API process (a redaction takes about as long as the video it reads) and
 * land in the crop store, so any replica can hand the files out once the manifest is there. While one runs, only
 * the replica running it knows its progress; a failure is kept here until the process ends.
 */
export class ExportJobs {
  private readonly jobs = new Map<string, ExportJob>();

  constructor(
    private readonly crops: CropStore,
    private readonly deps: () => Promise<Omit<ExportDeps, "progress">>,
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * Starts an export; its id once it is planned: a person with no visits, or visits without clips, fails here
   * (planExport's errors), not later in the background.
   */
  async start(request: Omit<ExportRequest, "out">): Promise<{ id: string; done: Promise<void> }> {
    const deps = await this.deps();
    const plan = await planExport(deps, request);
    const id = randomBytes(8).toString("hex");
    const startedTs = this.clock();
    this.jobs.set(id, { id, state: "running", done: 0, total: null, startedTs });
    const out = path.join(mkdtempSync(path.join(tmpdir(), "vigil-export-")), "out");
    const done = (async () => {
      try {
        const manifest = await exportPerson(
          {
            ...deps,
            progress: (d, total) => this.jobs.set(id, { id, state: "running", done: d, total, startedTs }),
          },
          { ...request, out },
          plan,
        );
        for (const f of manifest.files)
          await this.crops.put(key(id, f.file), readFileSync(path.join(out, f.file)));
        await this.crops.put(key(id, "manifest.json"), new TextEncoder().encode(JSON.stringify(manifest)));
        this.jobs.set(id, { id, state: "done", manifest });
      } catch (err) {
        this.jobs.set(id, { id, state: "failed", error: (err as Error).message, startedTs });
      } finally {
        rmSync(path.dirname(out), { recursive: true, force: true });
      }
    })();
    return { id, done };
  }

  /** Where an export stands: running or failed here, or done (from the crop store, whichever replica ran it). */
  async get(id: string): Promise<ExportJob | undefined> {
    if (!ID.test(id)) return undefined;
    const here = this.jobs.get(id);
    if (here && here.state !== "done") return here;
    const bytes = await this.crops.get(key(id, "manifest.json"));
    return (
      bytes && { id, state: "done", manifest: JSON.parse(new TextDecoder().decode(bytes)) as ExportManifest }
    );
  }

  /** One of a finished export's files. */
  async file(id: string, name: string): Promise<Uint8Array | undefined> {
    const job = await this.get(id);
    if (job?.state !== "done" || !job.manifest.files.some((f) => f.file === name)) return undefined;
    return this.crops.get(key(id, name));
  }

  /** Deletes a finished export's files and manifest; false when there is none. */
  async delete(id: string): Promise<boolean> {
    const job = await this.get(id);
    if (job?.state !== "done") return false;
    await this.crops.delete([...job.manifest.files.map((f) => key(id, f.file)), key(id, "manifest.json")]);
    this.jobs.delete(id);
    return true;
  }
}
