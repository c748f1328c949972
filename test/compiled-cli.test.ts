import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { kafkaUnavailableReason } from "../lib/testing/kafka/broker.ts";
import { checkoutRoot } from "../lib/util/checkout.ts";

// The compiled build (dist/) run as the README runs it after `npm test`: code that found the checkout by
// counting folders above its own file looked for .vigil/ under dist/ once compiled (issue #19).
const root = checkoutRoot();
const main = path.join(root, "dist/cli/main.js");
const stamp = path.join(root, "dist/.build-stamp");

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * Runs a command in the checkout without blocking the event loop (a minute of spawnSync would stall this
 * worker's heartbeat to vitest); stdout and stderr in full.
 */
function run(
  command: string,
  args: string[],
  timeoutMs: number,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill("SIGTERM"), timeoutMs);
    child.once("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** The test command builds before vitest; run alone, this file builds once when dist/ is missing or stale. */
beforeAll(async () => {
  const sources = Math.max(...["lib", "services", "cli"].map((d) => newestSource(path.join(root, d))));
  if (existsSync(stamp) && statSync(stamp).mtimeMs >= sources) return;
  console.log("dist/ is missing or older than the sources: npm run build");
  const build = await run("npm", ["run", "--silent", "build"], 280_000);
  if (build.status !== 0) throw new Error(`npm run build failed:\n${build.stdout}\n${build.stderr}`);
}, 300_000);

/** This environment less the overrides that would hide where the build looks on its own. */
function envWithout(...names: string[]): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const n of names) delete env[n];
  return env;
}

/** Evaluates `expr` in a fresh node process that imports the compiled module `modulePath` (under dist/) as `m`. */
function fromBuild(modulePath: string, expr: string): unknown {
  const url = pathToFileURL(path.join(root, "dist", modulePath)).href;
  const run = spawnSync(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `const m = await import(${JSON.stringify(url)}); console.log(JSON.stringify(${expr}));`,
    ],
    // From elsewhere than the checkout: the build must not lean on the working directory either.
    { cwd: "/", encoding: "utf8", env: envWithout("VIGIL_KAFKA_LIBS", "VIGIL_S3S_FS") },
  );
  expect(run.status, run.stderr).toBe(0);
  return JSON.parse(run.stdout.trim().split("\n").pop()!);
}

describe("the compiled build finds the checkout, not dist/", () => {
  it("checkoutRoot() from dist/ is the checkout's root", () => {
    expect(fromBuild("lib/util/checkout.js", "m.checkoutRoot()")).toBe(root);
  });

  it("the local Kafka broker looks for its jars in the checkout's .vigil/kafka/libs", () => {
    expect(fromBuild("lib/testing/kafka/broker.js", "m.KAFKA_LIBS")).toBe(
      path.join(root, ".vigil/kafka/libs"),
    );
  });

  // No command starts s3s-fs (only the crop store tests do), so the build compiles lib/testing/s3 only if some
  // command comes to import it: then its binary must be the checkout's, as from source.
  const s3 = path.join(root, "dist/lib/testing/s3/server.js");
  if (!existsSync(s3))
    console.log(
      "skipping the compiled S3 server check: no command imports lib/testing/s3, so dist/ has none",
    );
  it.skipIf(!existsSync(s3))("the local S3 server looks for s3s-fs in the checkout's .vigil/s3s", () => {
    expect(fromBuild("lib/testing/s3/server.js", "m.S3S_FS")).toBe(path.join(root, ".vigil/s3s/bin/s3s-fs"));
  });

  it("the API serves the console from the checkout's dist/console", () => {
    expect(fromBuild("services/api/console.js", "m.defaultConsoleDir()")).toBe(
      path.join(root, "dist/console"),
    );
    expect(existsSync(path.join(root, "dist/console/index.html"))).toBe(true);
  });
});

const testKafka = process.env.VIGIL_TEST_KAFKA;
const noKafka = testKafka === "off" || testKafka === "0" ? "VIGIL_TEST_KAFKA=off" : kafkaUnavailableReason();
if (noKafka) console.log(`skipping the compiled bench pipeline: ${noKafka}`);

describe.skipIf(!!noKafka)("the compiled CLI's benches that start local servers", () => {
  it("bench pipeline starts its own Kafka broker and RTSP server and prints sane figures", async () => {
    // The smallest run that still measures: one camera, 2 s embed windows, 3 s end to end (about a minute).
    const args = ["bench", "pipeline", "--json", "--cameras", "1", "--seconds", "3", "--window", "2"];
    const bench = await run(process.execPath, [main, ...args], 180_000);
    expect(bench.status, `${bench.stderr}\n${bench.stdout}`).toBe(0);
    const r = JSON.parse(bench.stdout.trim().split("\n").pop()!) as {
      brokers: string;
      facesPerSecond1: number;
      cameras: number;
      framesOffered: number;
      processedRatio: number;
    };
    expect(r.brokers).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(r.facesPerSecond1).toBeGreaterThan(0);
    expect(r.cameras).toBe(1);
    expect(r.framesOffered).toBeGreaterThan(0);
    expect(r.processedRatio).toBeGreaterThan(0);
    expect(r.processedRatio).toBeLessThanOrEqual(1);
  }, 180_000);
});
