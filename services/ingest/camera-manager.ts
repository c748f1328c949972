import { recordableUrl } from "../../lib/media/camera-url.ts";
import type { Config } from "../../lib/config/index.ts";
import type { CameraRecording } from "../../lib/media/recording.ts";
import type { Emit } from "../../lib/runtime/stage.ts";
import type { CameraSpec } from "./camera.ts";
import { CameraSupervisor, type CameraStatus } from "./camera-supervisor.ts";

/** Runs many cameras independently: one failing camera never disturbs the others. */
export class CameraManager {
  private readonly supervisors: CameraSupervisor[];
  private runs: Promise<CameraStatus>[] = [];

  constructor(
    cameras: CameraSpec[],
    emit: (e: Emit) => Promise<void>,
    timing: Config["ingest"],
    clock: () => number = Date.now,
  ) {
    this.supervisors = cameras.map((c) => new CameraSupervisor(c, emit, timing, clock));
  }

  start(): this {
    this.runs = this.supervisors.map((s) => s.run());
    return this;
  }

  /** Resolves when every camera has finished (files ended, cameras in error, or stopped). */
  async done(): Promise<CameraStatus[]> {
    return Promise.all(this.runs);
  }

  status(): CameraStatus[] {
    return this.supervisors.map((s) => s.snapshot());
  }

  /** The recorded cameras' rolling recordings, by camera id (what clips are cut from). */
  recordings(): Map<string, CameraRecording> {
    const out = new Map<string, CameraRecording>();
    // A file is never recorded: no clips are cut for it (its records name none, and the API says why).
    for (const s of this.supervisors)
      if (s.recording && recordableUrl(s.camera.url)) out.set(s.camera.id, s.recording);
    return out;
  }

  /** ffmpeg process ids currently running, for health checks and the no-orphans test. */
  pids(): number[] {
    return this.supervisors.map((s) => s.pid()).filter((p): p is number => p !== undefined);
  }

  /** Stops every camera; resolves once every ffmpeg child has exited. */
  async stop(): Promise<CameraStatus[]> {
    await Promise.all(this.supervisors.map((s) => s.stop()));
    return this.done();
  }
}
