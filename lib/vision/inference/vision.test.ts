import { describe, expect, it } from "vitest";
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { loadConfig } from "../../config/index.ts";
import { tempDir } from "../../../test/helpers.ts";
import { FALLBACK_PACK, PACKS, packModels } from "../models/registry.ts";
import { loadVision } from "./vision.ts";
import { ModelUnavailableError } from "../models/model-store.ts";

const projectCache = path.resolve(".vigil/models");
const fallbackCached = packModels(PACKS[FALLBACK_PACK]!).every((m) =>
  existsSync(path.join(projectCache, `${m.id}.onnx`)),
);
if (!fallbackCached)
  console.log("skipping the fallback test: the npm-only pack is not in .vigil/models (run npm run setup)");

describe("model pack fallback", () => {
  it.skipIf(!fallbackCached)(
    "falls back to the npm-only pack, loudly and once, when the default pack cannot be had",
    async () => {
      // A cache holding only the fallback pack, an empty mirror, and no network source allowed for the default.
      const cacheDir = tempDir();
      mkdirSync(cacheDir, { recursive: true });
      for (const m of packModels(PACKS[FALLBACK_PACK]!)) {
        copyFileSync(path.join(projectCache, `${m.id}.onnx`), path.join(cacheDir, `${m.id}.onnx`));
      }
      const config = loadConfig({
        env: {},
        overrides: { "models.cacheDir": cacheDir, "models.mirror": tempDir(), "models.sources": ["mirror"] },
      });
      const warnings: string[] = [];
      const vision = await loadVision(
        config,
        () => {},
        (m) => warnings.push(m),
      );
      expect(vision.pack.id).toBe(FALLBACK_PACK);
      expect(vision.fallbackReason).toMatch(/yunet-2026may: no source could be reached/);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(
        /default model pack \(yunet-reid0095\) is unavailable; using the npm-only pack/,
      );
      await loadVision(
        config,
        () => {},
        (m) => warnings.push(m),
      );
      expect(warnings).toHaveLength(1);
    },
  );

  it("does not fall back when a pack was asked for by name", async () => {
    const config = loadConfig({
      env: {},
      overrides: {
        "models.cacheDir": tempDir(),
        "models.mirror": tempDir(),
        "models.sources": ["mirror"],
        "models.pack": "yunet-reid0095",
      },
    });
    await expect(
      loadVision(
        config,
        () => {},
        () => {},
      ),
    ).rejects.toThrowError(ModelUnavailableError);
  });
});
