import { cliActor, KeyService } from "../../lib/api/keys.ts";
import type { Config } from "../../lib/config/index.ts";
import { openApiStore } from "../../lib/store/open-store.ts";

const DEMO_KEY_NAME = "demo-console";

/**
 * `vigil demo --api host:port`: an admin key for the web console, in the demo's own store, printed once. The
 * previous demo run's key is revoked first, so demos run again and again leave one live key, not a pile.
 */
export async function demoConsoleKey(config: Config): Promise<string> {
  const store = await openApiStore(config);
  try {
    const keys = new KeyService(store, store);
    for (const k of await keys.list())
      if (k.name === DEMO_KEY_NAME && k.revokedTs === null) await keys.revoke(k.id, cliActor());
    const { key } = await keys.create({ name: DEMO_KEY_NAME, role: "admin" }, cliActor());
    return key;
  } finally {
    await store.close();
  }
}

/** What the demo prints about the console: where it is and the key to sign in with. */
export function consoleHint(listen: string, key: string): string {
  const url = `http://${listen.replace(/^0\.0\.0\.0(?=:)/, "127.0.0.1")}/`;
  return (
    `vigil demo: web console at ${url} — sign in with this admin key (made for this demo; shown once):\n` +
    `vigil demo:   ${key}\n` +
    `vigil demo: the API stays up after the video ends; Ctrl-C stops it\n`
  );
}
