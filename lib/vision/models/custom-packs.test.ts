import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../config/index.ts";
import { assertPackCalibrated, thresholdFor, UncalibratedModelError } from "./calibration.ts";
import { declaredModel, declaredPack, packFor } from "./custom-packs.ts";
import { modelSpec, MODELS, PACKS } from "./registry.ts";

const SHA = "ab".repeat(32);
const embedder = {
  path: "/models/site.onnx",
  sha256: SHA,
  input: { width: 112, height: 112, channels: "rgb", mean: [127.5, 127.5, 127.5], std: [128, 128, 128] },
  template: "arcface",
  outputDim: 512,
};
const config = (packs: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  loadConfig({ env: {}, overrides: { "models.packs": packs, ...extra } });

describe("declared model packs: configuration", () => {
  it("accepts a declared pack by name and fills the parts it does not declare from its base pack", () => {
    const c = config({ site: { licence: "site licence", embedder } }, { "models.pack": "site" });
    const pack = packFor(c, c.models.pack);
    expect(pack).toMatchObject({ id: "site", declared: true, licence: "site licence" });
    expect(pack.detector).toBe(PACKS["yunet-reid0095"]!.detector);
    expect(pack.landmarks).toBeUndefined();
    expect(pack.embedder).toMatch(/^site-embedder-[0-9a-f]{8}$/);
    // Registered: code holding only the id (a vector's) finds the spec, with the named template scaled.
    const spec = modelSpec(pack.embedder);
    expect(spec.template).toEqual(MODELS["mobilefacenet-faceplugin"]!.template);
    expect(spec.input).toEqual({ ...embedder.input });
    expect(spec.sources).toEqual([{ kind: "file", files: { model: "/models/site.onnx" } }]);
  });

  it("keeps the base pack's landmark model for an UltraFace detector, and refuses one without it", () => {
    const ultraface = {
      path: "/models/det.onnx",
      sha256: SHA,
      decoder: "ultraface",
      input: { width: 320, height: 240, channels: "rgb", mean: [127, 127, 127], std: [128, 128, 128] },
    };
    const ok = config({ p: { licence: "l", base: "faceplugin-npm", detector: ultraface } });
    const pack = packFor(ok, "p");
    expect(pack.landmarks).toBe("landmarks68-faceplugin");
    expect(pack.embedder).toBe("mobilefacenet-faceplugin");
    const bad = config({ p: { licence: "l", detector: ultraface } });
    expect(() => packFor(bad, "p")).toThrowError(/UltraFace detector needs a landmark model/);
  });

  it("gives a new model id whenever the vectors would change (file, template, input scaling)", () => {
    const id = (e: Record<string, unknown>) =>
      declaredPack("site", config({ site: { licence: "l", embedder: e } }).models.packs.site!).pack.embedder;
    const base = id(embedder);
    expect(id(embedder)).toBe(base);
    expect(id({ ...embedder, sha256: "cd".repeat(32) })).not.toBe(base);
    expect(id({ ...embedder, template: "omz" })).not.toBe(base);
    expect(id({ ...embedder, input: { ...embedder.input, channels: "bgr" } })).not.toBe(base);
  });

  it("names what is wrong in a declaration", () => {
    expect(() => config({}, { "models.pack": "nope" })).toThrowError(
      /models\.pack: unknown pack nope; built-in: yunet-reid0095, faceplugin-npm; declared in models\.packs: none/,
    );
    expect(() => config({ "faceplugin-npm": { licence: "l", embedder } })).toThrowError(
      /models\.packs\.faceplugin-npm: faceplugin-npm is a built-in pack's name/,
    );
    expect(() => config({ s: { licence: "l", embedder: { ...embedder, sha256: "abc" } } })).toThrowError(
      /models\.packs\.s\.embedder\.sha256: a sha256 is 64 hex digits/,
    );
    expect(() => config({ s: { licence: "l" } })).toThrowError(/declares a detector, an embedder or both/);
    expect(() => config({ s: { embedder } })).toThrowError(/models\.packs\.s\.licence/);
    expect(() => config({ s: { licence: "l", embedder: { ...embedder, template: [[1, 2]] } } })).toThrowError(
      /models\.packs\.s\.embedder\.template/,
    );
    expect(() =>
      config({
        s: {
          licence: "l",
          detector: { path: "d.onnx", sha256: SHA, decoder: "ultraface", input: { channels: "rgb" } },
        },
      }),
    ).toThrowError(/set input\.width and input\.height/);
    expect(() => packFor(config({}), "absent")).toThrowError(ConfigError);
  });

  it("finds a declared embedder's id from config alone, and refuses to match with it uncalibrated", () => {
    const c = config({ site: { licence: "l", embedder } }, { "models.calibrationDir": "/nonexistent/cal" });
    const id = declaredPack("site", c.models.packs.site!).pack.embedder;
    expect(declaredModel(id, c)).toMatchObject({ pack: "site", licence: "l" });
    expect(declaredModel("reid-0095", c)).toBeUndefined();
    expect(() => thresholdFor(id, c)).toThrowError(UncalibratedModelError);
    expect(() => thresholdFor(id, c)).toThrowError(/vigil eval lfw --calibrate --pack site/);
    // An operating point given explicitly is the operator's call, as for any model.
    const overridden = config(
      { site: { licence: "l", embedder } },
      { "models.calibrationDir": "/nonexistent/cal", "match.threshold": 0.6 },
    );
    expect(thresholdFor(id, overridden)).toBe(0.6);
    const running = config(
      { site: { licence: "l", embedder } },
      { "models.calibrationDir": "/nonexistent/cal", "models.pack": "site" },
    );
    expect(() => assertPackCalibrated(running)).toThrowError(UncalibratedModelError);
    expect(() => assertPackCalibrated(config({}))).not.toThrow();
    // Built-in packs keep the registry's calibration.
    expect(thresholdFor("reid-0095", c)).toBe(MODELS["reid-0095"]!.calibration!.threshold);
  });
});
