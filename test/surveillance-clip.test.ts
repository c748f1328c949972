import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { runEmbedded } from "../cli/commands/run.ts";
import { collect, ofType, sharedData, sharedVision, skipReason, tempDir, testConfig } from "./helpers.ts";

/** The five talking-head clips of five different people (see the shared data README). */
const PEOPLE = ["d0", "d3", "d9", "d12", "d19"] as const;
const video = sharedData("video");
const noData = !video
  ? skipReason("the surveillance-scale talking-head test", "../shared/data/video")
  : PEOPLE.some((p) => !sharedData("video", `talking-${p}.mp4`))
    ? skipReason("the surveillance-scale talking-head test", "../shared/data/video/talking-d*.mp4")
    : undefined;

/**
 * As a distant camera sees a face: the 480–512 px clip shrunk to 12 % (its ~250 px face to ~30 px, eyes ~13 px
 * apart), set in a 640×360 frame, and re-encoded with H.264 at 80 kbit/s. One encoder thread, so the same
 * ffmpeg makes the same file every time.
 */
function surveillanceClip(source: string, out: string) {
  execFileSync("ffmpeg", [
    ...["-v", "error", "-y", "-i", source, "-an", "-threads", "1"],
    ...["-vf", "scale=trunc(iw*0.12/2)*2:-2:flags=area,pad=640:360:(ow-iw)/2:(oh-ih)/2:color=gray"],
    ...["-c:v", "libx264", "-b:v", "80k", "-x264-params", "threads=1", out],
  ]);
}

/** A good still: the original clip's frame half a second before its end, far from the moments that alert. */
function goodStill(source: string, out: string) {
  execFileSync("ffmpeg", ["-v", "error", "-y", "-sseof", "-0.5", "-i", source, "-frames:v", "1", out]);
}

describe.skipIf(!!noData)("faces as a surveillance camera sees them (real clips, ffmpeg, models)", () => {
  it("alerts on each person's ~30 px, low-bitrate clip from a good still, and on no one else", async () => {
    const dir = tempDir("vigil-surveillance-");
    const sources: string[] = [];
    for (const person of PEOPLE) {
      const original = path.join(video!, `talking-${person}.mp4`);
      mkdirSync(path.join(dir, "watchlist", person), { recursive: true });
      goodStill(original, path.join(dir, "watchlist", person, "still.png"));
      const clip = path.join(dir, `small-${person}.mp4`);
      surveillanceClip(original, clip);
      sources.push(clip);
    }
    const vision = await sharedVision();
    const { events, emit } = collect();
    // Cameras are cam-1 … cam-5 in PEOPLE's order.
    const { summary } = await runEmbedded(
      testConfig({ "ingest.fps": 5 }),
      vision,
      { source: sources, watchlist: path.join(dir, "watchlist"), events: "ndjson" },
      emit,
    );
    const enrolled = ofType(events, "enrol").filter((e) => e.ok);
    expect(enrolled.map((e) => e.personId).sort()).toEqual([...PEOPLE].sort());

    // The faces really are surveillance-sized, and below the photo gate (which asks for 32 px, eyes 14 px apart).
    const faces = ofType(events, "face");
    const widths = faces.map((f) => f.box.width).sort((a, b) => a - b);
    const median = widths[Math.floor(widths.length / 2)]!;
    expect(median).toBeGreaterThan(22);
    expect(median).toBeLessThan(38);
    expect(summary.faces).toBeGreaterThan(100);

    const camera = (i: number) => `cam-${i + 1}`;
    const alerts = ofType(events, "alert");
    PEOPLE.forEach((person, i) => {
      const here = alerts.filter((a) => a.cameraId === camera(i));
      expect(
        here.map((a) => a.personId),
        `${person}'s clip alerts on ${person}, once`,
      ).toEqual([person]);
      expect(here[0]!.score).toBeGreaterThanOrEqual(here[0]!.threshold);
    });
    // No sighting is labelled with someone it is not.
    const wrong = ofType(events, "sighting").filter(
      (s) => s.personId !== null && s.personId !== PEOPLE[Number(s.cameraId.slice(4)) - 1],
    );
    expect(wrong.map((s) => `${s.cameraId} labelled ${s.personId} (${s.score})`)).toEqual([]);
  }, 240_000);
});
