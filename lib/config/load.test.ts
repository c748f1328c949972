import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ConfigError, envKeyToPath, loadConfig } from "./load.ts";

describe("config", () => {
  it("maps environment variable names to config paths", () => {
    expect(envKeyToPath("VIGIL_DETECT__SCORE_THRESHOLD")).toBe("detect.scoreThreshold");
    expect(envKeyToPath("VIGIL_MODEL_MIRROR")).toBe("models.mirror");
    expect(envKeyToPath("HOME")).toBeUndefined();
  });

  it("layers file, environment and overrides in that order", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "vigil-cfg-"));
    const file = path.join(dir, "c.json");
    writeFileSync(
      file,
      JSON.stringify({ detect: { scoreThreshold: 0.5, maxSide: 320 }, embed: { flip: false } }),
    );
    const config = loadConfig({
      file,
      env: { VIGIL_DETECT__SCORE_THRESHOLD: "0.8", VIGIL_MODEL_MIRROR: "/m" },
      overrides: { "embed.flip": true },
    });
    expect(config.detect.scoreThreshold).toBe(0.8);
    expect(config.detect.maxSide).toBe(320);
    expect(config.models.mirror).toBe("/m");
    expect(config.embed.flip).toBe(true);
    expect(config.quality.minFaceSize).toBe(32);
  });

  it("names the bad key and where it came from", () => {
    expect(() => loadConfig({ env: { VIGIL_DETECT__SCORE_THRESHOLD: "7" } })).toThrowError(
      /detect\.scoreThreshold: .*VIGIL_DETECT__SCORE_THRESHOLD/,
    );
    expect(() => loadConfig({ env: {}, overrides: { "models.pack": "nope" } })).toThrowError(ConfigError);
  });

  it("rejects a config file that is not JSON, naming the file", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "vigil-cfg-"));
    const file = path.join(dir, "bad.json");
    writeFileSync(file, "{ not json");
    expect(() => loadConfig({ file, env: {} })).toThrowError(/bad\.json is not valid JSON/);
  });

  it("keeps a string key's environment value a string even when it reads as JSON (a numeric password)", () => {
    const config = loadConfig({
      env: {
        VIGIL_BUS__KAFKA__SASL: '{"mechanism":"plain","username":"vigil","password":"x"}',
        VIGIL_STORE__QDRANT_API_KEY: "123456",
        VIGIL_BUS__KAFKA__CLIENT_ID: "true",
      },
    });
    expect(config.store.qdrantApiKey).toBe("123456");
    expect(config.bus.kafka.clientId).toBe("true");
    expect(config.bus.kafka.sasl?.username).toBe("vigil");
  });

  it("lays a camera's record settings over the site's ingest.record, field by field", () => {
    const config = loadConfig({
      env: {},
      overrides: {
        "ingest.record": { keepDays: 30, preRollS: 9 },
        cameras: [{ id: "door", url: "rtsp://x/door", record: { keep: "all" } }],
      },
    });
    expect(config.cameras[0]!.record).toEqual({ keep: "all" });
    expect({ ...config.ingest.record, ...config.cameras[0]!.record }).toMatchObject({
      keep: "all",
      keepDays: 30,
      preRollS: 9,
      postRollS: 5,
    });
  });

  it("refuses a camera id that would name a folder above its recordings", () => {
    for (const id of ["..", ".", ".joining"])
      expect(() => loadConfig({ env: {}, overrides: { cameras: [{ id, url: "rtsp://x/y" }] } })).toThrow(
        /do not start with '\.'/,
      );
  });
});
