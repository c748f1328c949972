import { describe, expect, it } from "vitest";
import { loadConfig } from "../../lib/config/index.ts";
import { alertFaceUrls, underBase } from "./alert-links.ts";

describe("alert face URLs under the API's external address", () => {
  it("keeps the address's path, with or without its trailing slash", () => {
    expect(underBase("/v1/alerts/a/crop", "https://vigil.example")).toBe(
      "https://vigil.example/v1/alerts/a/crop",
    );
    expect(underBase("/v1/alerts/a/crop", "https://host/vigil/")).toBe("https://host/vigil/v1/alerts/a/crop");
    expect(underBase("/v1/alerts/a/crop", "https://host/vigil")).toBe("https://host/vigil/v1/alerts/a/crop");
  });

  it("builds both faces' URLs, the enrolled one from the photo the alert matched", async () => {
    const shown = {
      photoToShow: async (personId: string, matched?: string | null) =>
        matched ? { personId, faceId: matched, modelId: "m", source: "test", hasCrop: true } : undefined,
    };
    const urls = alertFaceUrls(shown, "https://host/vigil/", (camera) => camera === "door");
    expect(
      await urls({ id: "alert:cam:1", personId: "ann", matchedFaceId: "ann:ann 2.jpg", cameraId: "door" }),
    ).toEqual({
      cropUrl: "https://host/vigil/v1/alerts/alert%3Acam%3A1/crop",
      personCropUrl: "https://host/vigil/v1/people/ann/photos/ann%202.jpg/crop",
      clipUrl: "https://host/vigil/v1/alerts/alert%3Acam%3A1/clip",
    });
    // A camera that is not recorded: no clip to point at.
    expect(
      (await urls({ id: "b", personId: "ann", matchedFaceId: null, cameraId: "yard" })).clipUrl,
    ).toBeNull();
  });

  it("refuses a public URL that is not http(s) at start", () => {
    for (const bad of ["mailto:a@b", "javascript:alert(1)", "not a url"])
      expect(() => loadConfig({ env: {}, overrides: { "api.mqtt.publicUrl": bad } }), bad).toThrow(
        /publicUrl/,
      );
    expect(
      loadConfig({ env: {}, overrides: { "api.mqtt.publicUrl": "https://vigil.example/" } }).api.mqtt
        .publicUrl,
    ).toBe("https://vigil.example/");
  });
});
