import { afterAll, describe, expect, it } from "vitest";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { loadConfig } from "../lib/config/index.ts";
import {
  CameraStatusContract,
  FrameContract,
  Topics,
  type CameraStatusMessage,
} from "../lib/contracts/index.ts";
import type { Emit } from "../lib/runtime/stage.ts";
import { CameraManager } from "../services/ingest/camera-manager.ts";
import { resolveCamera } from "../services/ingest/camera.ts";
import { RtspTestServer } from "../lib/testing/rtsp/server.ts";
import { tempDir } from "./helpers.ts";
import { generateVideo, type H264Options } from "../lib/media/generate.ts";

const ingest = loadConfig({
  env: {},
  overrides: {
    "ingest.fps": 5,
    "ingest.width": 640,
    "ingest.height": 360,
    "ingest.stallTimeoutS": 3,
    "ingest.ioTimeoutS": 2,
    "ingest.backoffMaxMs": 1000,
    "ingest.killGraceMs": 1000,
    "ingest.statusEveryS": 1,
  },
}).ingest;

/** What the rest of the system sees of the cameras: frames and status events, decoded from the contract bytes. */
function recorder() {
  const frames = new Map<string, { seq: number; at: number; width: number; height: number }[]>();
  const statuses: (CameraStatusMessage & { at: number })[] = [];
  const emit = async (e: Emit) => {
    if (e.topic === Topics.frames) {
      const f = FrameContract.decode(e.value);
      const list = frames.get(f.cameraId) ?? [];
      list.push({ seq: f.seq, at: Date.now(), width: f.width, height: f.height });
      frames.set(f.cameraId, list);
    } else if (e.topic === Topics.cameraStatus) {
      statuses.push({ ...CameraStatusContract.decode(e.value), at: Date.now() });
    }
  };
  const framesOf = (id: string) => frames.get(id) ?? [];
  const states = (id: string) => statuses.filter((s) => s.cameraId === id).map((s) => s.state);
  return { emit, frames, framesOf, statuses, states };
}

const until = async (cond: () => boolean, timeoutMs: number, what: string) => {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - start;
};

/** ffmpeg processes whose parent is this test process (read from /proc, not from our own bookkeeping). */
function ffmpegChildren(): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (comm === "ffmpeg" && ppid === process.pid) out.push(Number(entry));
    } catch {
      // the process went away while we looked
    }
  }
  return out;
}

const servers: RtspTestServer[] = [];
const managers: CameraManager[] = [];
afterAll(async () => {
  for (const m of managers) await m.stop();
  for (const s of servers) await s.kill();
});

const camera = (id: string, url: string) => resolveCamera({ id, url, loop: false }, ingest);

describe("ingest against a real RTSP server (GStreamer)", () => {
  it("reconnects after the server is killed mid-stream and restarted: live again within 5 s of the restart", async () => {
    const server = await RtspTestServer.start({ "/cam": { kind: "test", width: 640, height: 360 } });
    servers.push(server);
    const rec = recorder();
    const manager = new CameraManager([camera("door", server.url("/cam"))], rec.emit, ingest).start();
    managers.push(manager);
    await until(() => rec.framesOf("door").length >= 5, 15_000, "first frames");
    await server.kill();
    await until(() => rec.states("door").includes("backoff"), 10_000, "the disconnect to be noticed");
    // ffmpeg may exit 0 when an RTSP server dies; that must read as a disconnect, never as the end
    expect(rec.states("door")).not.toContain("ended");
    await new Promise((r) => setTimeout(r, 1500));
    const framesBefore = rec.framesOf("door").length;
    await server.launch();
    // From when the server answers again: on a loaded machine its own start (GStreamer in python) takes seconds
    // that say nothing of how fast ingest reconnects.
    const restartedAt = Date.now();
    await until(() => rec.framesOf("door").length > framesBefore, 15_000, "frames after the restart");
    const liveAfter = rec.statuses.find(
      (s) => s.cameraId === "door" && s.state === "live" && s.at >= restartedAt,
    )!;
    expect(liveAfter.at - restartedAt).toBeLessThan(5000);
    expect(manager.status()[0]!.reconnects).toBeGreaterThanOrEqual(1);
    const seqs = rec.framesOf("door").map((f) => f.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b)); // monotonic across the reconnect
    await manager.stop();
  });

  it("marks a frozen server stalled within the timeout and recovers after it resumes", async () => {
    const server = await RtspTestServer.start({ "/cam": { kind: "test", width: 640, height: 360 } });
    servers.push(server);
    const rec = recorder();
    const manager = new CameraManager([camera("lobby", server.url("/cam"))], rec.emit, ingest).start();
    managers.push(manager);
    await until(() => rec.framesOf("lobby").length >= 5, 15_000, "first frames");
    const frozenAt = Date.now();
    server.pause();
    await until(() => rec.states("lobby").includes("stalled"), 10_000, "the stall");
    const stalledAt = rec.statuses.find((s) => s.state === "stalled")!.at;
    expect(stalledAt - frozenAt).toBeLessThan(ingest.stallTimeoutS * 1000 + 1500);
    await new Promise((r) => setTimeout(r, 1000));
    const before = rec.framesOf("lobby").length;
    server.resume();
    await until(() => rec.framesOf("lobby").length > before + 3, 15_000, "frames after resuming");
    expect(rec.states("lobby").at(-1)).toBe("live");
    await manager.stop();
  });

  it("runs four cameras at once; one failing (bad mount) goes to error with the reason, three are undisturbed", async () => {
    const server = await RtspTestServer.start({
      "/a": { kind: "test", width: 640, height: 360, pattern: "ball" },
      "/b": { kind: "test", width: 640, height: 360, pattern: "smpte" },
      "/c": { kind: "test", width: 320, height: 240, pattern: "snow" },
    });
    servers.push(server);
    const rec = recorder();
    const cams = [
      camera("a", server.url("/a")),
      camera("b", server.url("/b")),
      camera("c", server.url("/c")),
      camera("bad", server.url("/missing")),
    ];
    const manager = new CameraManager(cams, rec.emit, ingest).start();
    managers.push(manager);
    await until(() => rec.states("bad").includes("error"), 15_000, "the bad camera's error");
    expect(manager.status().find((s) => s.cameraId === "bad")!.lastError).toMatch(/404|not found/i);
    const start = Date.now();
    const counts = () => ["a", "b", "c"].map((id) => rec.framesOf(id).length);
    const base = counts();
    await new Promise((r) => setTimeout(r, 4000));
    const gained = counts().map((n, i) => n - base[i]!);
    const seconds = (Date.now() - start) / 1000;
    for (const g of gained) expect(g).toBeGreaterThanOrEqual(Math.floor(seconds * ingest.fps * 0.8));
    for (const s of manager.status().filter((s) => s.cameraId !== "bad")) {
      expect(s.state).toBe("live");
      expect(s.reconnects).toBe(0);
    }
    // the 320×240 source is letterboxed into the configured 640×360 frame
    expect(rec.framesOf("c")[0]).toMatchObject({ width: 640, height: 360 });
    await manager.stop();
  });

  it("parks a camera whose credentials are refused in error, naming the reason", async () => {
    const server = await RtspTestServer.start(
      { "/secure": { kind: "test", width: 320, height: 240 } },
      "vigil:s3cret",
    );
    servers.push(server);
    const rec = recorder();
    const manager = new CameraManager(
      [
        camera("nocreds", server.url("/secure")),
        camera("wrong", server.url("/secure", "vigil:nope")),
        camera("ok", server.url("/secure", "vigil:s3cret")),
      ],
      rec.emit,
      ingest,
    ).start();
    managers.push(manager);
    await until(
      () => rec.states("nocreds").includes("error") && rec.states("wrong").includes("error"),
      15_000,
      "auth errors",
    );
    await until(() => rec.framesOf("ok").length >= 3, 15_000, "frames with the right password");
    for (const id of ["nocreds", "wrong"]) {
      expect(manager.status().find((s) => s.cameraId === id)!.lastError).toMatch(/401|unauthori[sz]ed/i);
    }
    await manager.stop();
  });

  it("keeps going through a resolution change and corrupt packets, counting what it cannot decode", async () => {
    const dir = tempDir();
    const a = path.join(dir, "a.ts");
    const b = path.join(dir, "b.ts");
    const joined = path.join(dir, "joined.ts");
    const enc: H264Options = { preset: "ultrafast", gop: 10, container: "mpegts" };
    generateVideo("testsrc2=size=640x360:rate=25:duration=4", a, enc);
    generateVideo("testsrc2=size=320x240:rate=25:duration=4", b, enc);
    const bytes = Buffer.concat([readFileSync(a), readFileSync(b)]);
    // Smash payload bytes in the middle of the first part (TS packets are 188 bytes; keep the sync bytes).
    for (let p = 188 * 200; p < 188 * 260; p += 188)
      for (let i = 20; i < 180; i += 3) bytes[p + i] = (p + i) & 0xff;
    writeFileSync(joined, bytes);
    const server = await RtspTestServer.start({ "/clip": { kind: "file", path: joined } });
    servers.push(server);
    const rec = recorder();
    const manager = new CameraManager([camera("clip", server.url("/clip"))], rec.emit, ingest).start();
    managers.push(manager);
    // The file is 8 s long; frames must keep arriving after the resolution change at 4 s.
    await until(() => rec.framesOf("clip").length >= 30, 20_000, "frames through the change");
    const status = manager.status()[0]!;
    expect(status.framesUndecodable).toBeGreaterThan(0);
    expect(rec.framesOf("clip").every((f) => f.width === 640 && f.height === 360)).toBe(true);
    await manager.stop();
  });

  it("leaves no ffmpeg process behind after shutdown", async () => {
    const server = await RtspTestServer.start({
      "/x": { kind: "test", width: 320, height: 240 },
      "/y": { kind: "test", width: 320, height: 240 },
    });
    servers.push(server);
    const rec = recorder();
    const manager = new CameraManager(
      [camera("x", server.url("/x")), camera("y", server.url("/y"))],
      rec.emit,
      ingest,
    ).start();
    await until(() => rec.framesOf("x").length >= 2 && rec.framesOf("y").length >= 2, 15_000, "frames");
    const pids = manager.pids();
    expect(pids).toHaveLength(2);
    expect(ffmpegChildren().sort()).toEqual([...pids].sort());
    // Freeze the server first: a frozen reader is the case that ignores SIGTERM.
    server.pause();
    await manager.stop();
    server.resume();
    expect(ffmpegChildren()).toEqual([]);
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
  });
});
