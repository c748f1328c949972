import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { KeyService, parseKey } from "../lib/api/keys.ts";
import { SqliteApiStore } from "../lib/store/sqlite-api-store.ts";
import { tempDir } from "./helpers.ts";

const dir = tempDir("vigil-keys-cli-");
const file = path.join(dir, "vigil.db");

function vigil(...args: string[]) {
  const r = spawnSync(process.execPath, [path.resolve("bin/vigil.js"), ...args], {
    encoding: "utf8",
    env: { ...process.env, VIGIL_STORE__PATH: file, VIGIL_DATA_DIR: path.resolve(".vigil"), USER: "tester" },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("vigil keys and vigil audit", () => {
  it("creates a key printed once (--json gives {key}), lists and revokes it, and audits each change", async () => {
    const created = vigil("keys", "create", "--role", "operator", "--name", "night desk", "--json");
    expect(created.code, created.stderr).toBe(0);
    const { key, id } = JSON.parse(created.stdout) as { key: string; id: string };
    expect(key).toMatch(/^vgl_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);

    const store = new SqliteApiStore(file);
    try {
      const keys = new KeyService(store, store);
      expect(await keys.authenticate(key)).toMatchObject({
        ok: true,
        key: { id, role: "operator", name: "night desk" },
      });
      // Only a hash is kept: the secret is nowhere in the file's key row.
      expect((await store.getKey(id))!.hash).not.toContain(parseKey(key)!.secret);

      const list = vigil("keys", "list");
      expect(list.stdout).toContain(id);
      expect(list.stdout).toContain("operator");
      expect(list.stdout).not.toContain(key);
      expect(vigil("keys", "create", "--role", "root", "--name", "x").code).toBe(1);

      const revoked = vigil("keys", "revoke", id);
      expect(revoked.code, revoked.stderr).toBe(0);
      expect(await keys.authenticate(key)).toEqual({ ok: false, reason: "revoked" });
      expect(vigil("keys", "revoke", "ffffffffffff").stderr).toContain("no API key ffffffffffff");

      const audit = JSON.parse(vigil("audit", "--json", "--action", "key").stdout) as {
        items: { action: string; actor: { name: string }; target: string }[];
      };
      expect(audit.items.map((e) => e.action)).toEqual(["key.revoke", "key.create"]);
      expect(audit.items.every((e) => e.actor.name.startsWith("cli:") && e.target === id)).toBe(true);
      const verify = vigil("audit", "--verify");
      expect(verify.code).toBe(0);
      expect(verify.stdout).toContain("audit log intact: 2 entries");
    } finally {
      store.close();
    }
  });
});
