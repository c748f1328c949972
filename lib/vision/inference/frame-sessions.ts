import type { FrameGeometry } from "../models/frame-input.ts";
import type { ort } from "./runtime.ts";

/**
 * The frame-input sessions a detector has opened, by frame geometry (lib/vision/models/frame-input.ts): a
 * camera's frames all share one, so a few cover a site's mix of camera sizes; the oldest is released past that.
 * A session that fails to open is forgotten, so the next frame of its size tries again.
 */
export class FrameInputSessions {
  private sessions = new Map<string, Promise<ort.InferenceSession>>();

  constructor(
    private readonly open: (geometry: FrameGeometry) => Promise<ort.InferenceSession>,
    private readonly max = 4,
  ) {}

  get(geometry: FrameGeometry): Promise<ort.InferenceSession> {
    const key = `${geometry.width}x${geometry.height}/${geometry.k} in ${geometry.padWidth}x${geometry.padHeight}`;
    let session = this.sessions.get(key);
    if (!session) {
      if (this.sessions.size >= this.max) {
        const [oldest, old] = this.sessions.entries().next().value!;
        this.sessions.delete(oldest);
        void old.then((s) => s.release()).catch(() => {});
      }
      session = this.open(geometry);
      this.sessions.set(key, session);
      session.catch(() => this.sessions.delete(key));
    }
    return session;
  }

  async release(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) await (await s).release();
  }
}
