import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { generateVideo } from "../lib/media/generate.ts";
import { skipReason, tempDir } from "./helpers.ts";

const dist = path.resolve("dist/cli/main.js");
const missing = existsSync(dist) ? undefined : skipReason("compiled-build test", "dist/ (npm run build)");

describe.skipIf(!!missing)("the compiled build (dist/)", () => {
  it("carries the files its modules read from beside themselves (the benches' RTSP server, the console)", () => {
    expect(existsSync(path.resolve("dist/lib/testing/rtsp/rtsp_server.py"))).toBe(true);
    expect(existsSync(path.resolve("dist/console/index.html"))).toBe(true);
  });

  it("runs the pipeline from plain JS, its inference worker threads without tsx's loader", () => {
    const dir = tempDir();
    const video = path.join(dir, "clip.mp4");
    generateVideo("testsrc2=size=320x240:rate=25:duration=1", video);
    const run = spawnSync(process.execPath, [dist, "run", "--source", video, "--events", "ndjson"], {
      encoding: "utf8",
      env: {
        ...process.env,
        VIGIL_STORE__PATH: path.join(dir, "vigil.db"),
        VIGIL_MODELS__INFERENCE_WORKERS: "true",
        // A worker that tried to load .ts files without the loader would fail to start: make that loud.
        NODE_OPTIONS: "",
      },
      timeout: 120_000,
    });
    expect(run.status, run.stderr).toBe(0);
    const summary = run.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string; frames?: number })
      .find((e) => e.type === "summary");
    expect(summary?.frames).toBe(5);
    expect(run.stderr).not.toMatch(/worker could not load|ERR_UNKNOWN_FILE_EXTENSION/);
  });
});
