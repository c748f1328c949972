import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { checkoutRoot, findCheckoutRoot } from "./checkout.ts";

describe("checkoutRoot", () => {
  it("is the repository's root from source", () => {
    expect(checkoutRoot()).toBe(path.resolve(import.meta.dirname, "../.."));
    expect(checkoutRoot()).toBe(checkoutRoot());
  });

  it("walks past dist/ and other packages' package.json to Vigil's, and is undefined outside a checkout", () => {
    const root = mkdtempSync(path.join(tmpdir(), "vigil-checkout-"));
    writeFileSync(path.join(root, "package.json"), JSON.stringify({ name: "vigil" }));
    const compiled = path.join(root, "dist/lib/util");
    mkdirSync(compiled, { recursive: true });
    writeFileSync(path.join(root, "dist/package.json"), JSON.stringify({ name: "not-vigil" }));
    expect(findCheckoutRoot(compiled)).toBe(root);
    expect(findCheckoutRoot(root)).toBe(root);
    expect(findCheckoutRoot(tmpdir())).toBeUndefined();
  });
});
