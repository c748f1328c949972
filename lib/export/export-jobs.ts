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
  type ExportPlan,
  type ExportRequest,
} from "./person-export.ts";

export type ExportJob =
  | { id: string; state: "running"; done: number; total: number | null; startedTs: number }
  | { id: string; state: "failed"; error: string; startedTs: number }
  | { id: string; state: "done"; manifest: ExportManifest };

/**
 * A job not yet done, as every replica reads it from the crop store (`exports/<id>/job.json`): what was asked,
 * who runs it and when it last said so. A replica that dies stops beating; the next replica asked about the job
 * takes it over.
 */
interface JobRecord {
  id: string;
  request: Omit<ExportRequest, "out">;
  state: "running" | "failed";
  owner: string;
  /** 1 for the replica that started it, one more for each takeover. */
  attempt: number;
  startedTs: number;
  /** 0 when its replica let it go on shutting down: the next replica asked takes it at once. */
  heartbeatTs: number;
  done: number;
  total: number | null;
  error?: string;
}

export interface ExportJobTiming {
  /** How often a running job's replica writes its record (progress and heartbeat). */
  heartbeatMs: number;
  /** A running job whose heartbeat is older than this was left by a replica that stopped. */
  staleMs: number;
  /** Runs of one export (the first and the takeovers) before it is failed rather than taken over again. */
  maxAttempts: number;
  /** How long a takeover waits after claiming the job before it starts, so that of two claims the last wins. */
  claimSettleMs: number;
}

const TIMING: ExportJobTiming = { heartbeatMs: 5000, staleMs: 20_000, maxAttempts: 3, claimSettleMs: 300 };

/** An export's objects in the crop store: `exports/<id>/<file>`, the manifest last. */
const key = (id: string, file: string) => `exports/${id}/${file}`;
const ID = /^[0-9a-f]{16}$/;

interface LocalRun {
  record: JobRecord;
  abort: AbortController;
  finished: Promise<void>;
}

/**
 * Exports run in the background of an API process (a redaction takes about as long as the video it reads) and
 * land in the crop store, so any replica hands out the files once the manifest is there. A running or failed
 * job is kept there too, so any replica reports it, and one left by a replica that stopped is taken over and run
 * again from its start by the next replica asked about it.
 */
export class ExportJobs {
  private readonly runs = new Map<string, LocalRun>();
  /** Jobs this replica has claimed and not yet started (the claim settling). */
  private readonly claiming = new Set<string>();
  private readonly owner = randomBytes(6).toString("hex");
  private readonly timing: ExportJobTiming;
  private closed = false;

  constructor(
    private readonly crops: CropStore,
    private readonly deps: () => Promise<Omit<ExportDeps, "progress" | "signal">>,
    private readonly clock: () => number = Date.now,
    timing: Partial<ExportJobTiming> = {},
  ) {
    this.timing = { ...TIMING, ...timing };
  }

  /**
   * Starts an export; its id once it is planned: a person with no visits, or visits without clips, fails here
   * (planExport's errors), not later in the background.
   */
  async start(request: Omit<ExportRequest, "out">): Promise<{ id: string; done: Promise<void> }> {
    if (this.closed) throw new Error("this API replica is shutting down: start the export again");
    const deps = await this.deps();
    const plan = await planExport(deps, request);
    const id = randomBytes(8).toString("hex");
    const now = this.clock();
    const record: JobRecord = {
      id,
      request,
      state: "running",
      owner: this.owner,
      attempt: 1,
      startedTs: now,
      heartbeatTs: now,
      done: 0,
      total: null,
    };
    await this.write(record);
    return { id, done: this.run(record, plan) };
  }

  /**
   * Where an export stands: done (from its manifest), or running or failed (from its record, whichever replica
   * runs it). A running one whose replica stopped is taken over here.
   */
  async get(id: string): Promise<ExportJob | undefined> {
    if (!ID.test(id)) return undefined;
    const here = this.runs.get(id);
    if (here) return view(here.record);
    const manifest = await this.crops.get(key(id, "manifest.json"));
    if (manifest)
      return {
        id,
        state: "done",
        manifest: JSON.parse(new TextDecoder().decode(manifest)) as ExportManifest,
      };
    const record = await this.read(id);
    if (!record) return undefined;
    const stale = record.state === "running" && this.clock() - record.heartbeatTs > this.timing.staleMs;
    if (stale && !this.closed && !this.claiming.has(id)) return view(await this.takeOver(record));
    return view(record);
  }

  /** One of a finished export's files. */
  async file(id: string, name: string): Promise<Uint8Array | undefined> {
    const job = await this.get(id);
    if (job?.state !== "done" || !job.manifest.files.some((f) => f.file === name)) return undefined;
    return this.crops.get(key(id, name));
  }

  /** Deletes a finished or failed export (its files, manifest and record); false when there is none. */
  async delete(id: string): Promise<boolean> {
    const job = await this.get(id);
    if (!job || job.state === "running") return false;
    const files = job.state === "done" ? job.manifest.files.map((f) => key(id, f.file)) : [];
    await this.crops.delete([...files, key(id, "manifest.json"), key(id, "job.json")]);
    return true;
  }

  /**
   * Stops this replica's exports at their next frame and lets them go, so the next replica asked about one
   * takes it over at once instead of waiting for its heartbeat to go stale.
   */
  async close() {
    this.closed = true;
    const runs = [...this.runs.values()];
    for (const r of runs) r.abort.abort();
    await Promise.all(runs.map((r) => r.finished));
  }

  /** Runs the export of `record`, from `plan` when the caller has just made it (a takeover plans afresh). */
  private run(record: JobRecord, plan?: ExportPlan): Promise<void> {
    const abort = new AbortController();
    // Set when another replica has taken the job over (this one was only slow): it then publishes and writes
    // nothing more, and leaves the job to the new owner.
    let superseded = false;
    let beating: Promise<void> | undefined;
    const beatOnce = async () => {
      const current = await this.read(record.id);
      if (current && (current.owner !== record.owner || current.attempt !== record.attempt)) {
        superseded = true;
        abort.abort();
        return;
      }
      record.heartbeatTs = this.clock();
      await this.write(record);
    };
    const beat = setInterval(() => {
      // One beat at a time: a store slower than the interval must not land an old beat after the last write.
      // One that fails (the store away) is retried by the next; missed beats make the job look stale.
      beating ??= beatOnce()
        .catch(() => undefined)
        .finally(() => (beating = undefined));
    }, this.timing.heartbeatMs);
    const stopBeating = async () => {
      clearInterval(beat);
      await beating;
    };
    let scratch: string | undefined;
    const finished = (async () => {
      try {
        scratch = mkdtempSync(path.join(tmpdir(), "vigil-export-"));
        const out = path.join(scratch, "out");
        const manifest = await exportPerson(
          {
            ...(await this.deps()),
            signal: abort.signal,
            progress: (done, total) => Object.assign(record, { done, total }),
          },
          { ...record.request, out },
          plan,
        );
        // Still beating while the files go up (a large video to S3 can take longer than a heartbeat's age limit).
        for (const f of manifest.files) {
          if (superseded) return;
          await this.crops.put(key(record.id, f.file), readFileSync(path.join(out, f.file)));
        }
        await stopBeating();
        if (superseded) return;
        // The manifest makes the export done for every replica; the record is then only clutter.
        await this.crops.put(
          key(record.id, "manifest.json"),
          new TextEncoder().encode(JSON.stringify(manifest)),
        );
        await this.crops.delete([key(record.id, "job.json")]);
      } catch (err) {
        await stopBeating();
        if (superseded) return;
        // Stopped by close(): let it go, so the next replica asked takes it over without waiting.
        if (abort.signal.aborted) record.heartbeatTs = 0;
        else Object.assign(record, { state: "failed", error: (err as Error).message });
        // Not written (the store away), a running record goes stale and is run again elsewhere.
        await this.write(record).catch(() => undefined);
      } finally {
        await stopBeating();
        if (scratch) rmSync(scratch, { recursive: true, force: true });
        this.runs.delete(record.id);
      }
    })();
    this.runs.set(record.id, { record, abort, finished });
    return finished;
  }

  /**
   * Claims a job whose replica stopped and runs it again from its start, unless it has been run as often as
   * allowed, or this replica cannot run it (no face models to redact with: the job waits for one that can). Of
   * two replicas claiming it at once, the one whose claim is read back after the settle runs it; the other's
   * runs, if both started, are stopped by their heartbeats, which find the record no longer theirs.
   */
  private async takeOver(record: JobRecord): Promise<JobRecord> {
    if (record.request.redact === "others" && !(await this.deps()).vision) return record;
    if (record.attempt >= this.timing.maxAttempts) {
      const failed: JobRecord = {
        ...record,
        state: "failed",
        error: `its replica stopped while running it, ${record.attempt} times: start it again`,
      };
      await this.write(failed);
      return failed;
    }
    const claim: JobRecord = {
      ...record,
      owner: this.owner,
      attempt: record.attempt + 1,
      heartbeatTs: this.clock(),
      done: 0,
      total: null,
    };
    await this.write(claim);
    this.claiming.add(record.id);
    void (async () => {
      try {
        await new Promise((r) => setTimeout(r, this.timing.claimSettleMs));
        const current = await this.read(record.id);
        const mine = current?.owner === this.owner && current.attempt === claim.attempt;
        // Finished meanwhile by a replica that was only slow: nothing to run.
        const done = (await this.crops.get(key(record.id, "manifest.json"))) !== undefined;
        if (!mine || done || this.runs.has(record.id)) return;
        // Shut down while settling: let the claim go at once, as close() does for running exports.
        if (this.closed) await this.write({ ...claim, heartbeatTs: 0 });
        else await this.run(claim);
      } catch {
        // The store away: the claim goes stale and the next replica asked claims it again.
      } finally {
        this.claiming.delete(record.id);
      }
    })();
    return claim;
  }

  private async read(id: string): Promise<JobRecord | undefined> {
    const bytes = await this.crops.get(key(id, "job.json"));
    return bytes && (JSON.parse(new TextDecoder().decode(bytes)) as JobRecord);
  }

  private write(record: JobRecord) {
    return this.crops.put(key(record.id, "job.json"), new TextEncoder().encode(JSON.stringify(record)));
  }
}

function view(r: JobRecord): ExportJob {
  return r.state === "failed"
    ? { id: r.id, state: "failed", error: r.error ?? "failed", startedTs: r.startedTs }
    : { id: r.id, state: "running", done: r.done, total: r.total, startedTs: r.startedTs };
}
