import { cliActor, KeyService } from "../../lib/api/keys.ts";
import type { Config } from "../../lib/config/index.ts";
import { parseTime } from "../../lib/history/timeline.ts";
import { InvalidInputError, NotFoundError } from "../../lib/store/errors.ts";
import { ROLES, type Role } from "../../lib/store/key-store.ts";
import { openApiStore } from "../../lib/store/open-store.ts";
import type { ApiStore } from "../../lib/store/api-store.ts";
import { UsageError } from "../context.ts";

const iso = (ts: number | null) => (ts === null ? "-" : new Date(ts).toISOString());

async function withApiStore<T>(config: Config, use: (store: ApiStore) => Promise<T>): Promise<T> {
  const store = await openApiStore(config);
  try {
    return await use(store);
  } catch (err) {
    if (err instanceof NotFoundError || err instanceof InvalidInputError) throw new UsageError(err.message);
    throw err;
  } finally {
    await store.close();
  }
}

export interface KeysCreateOptions {
  role: string;
  name: string;
  rate?: number;
  json?: boolean;
}

/** Prints the new key once: only its hash is stored. */
export async function keysCreateCommand(config: Config, opts: KeysCreateOptions) {
  if (!ROLES.includes(opts.role as Role))
    throw new UsageError(`--role must be one of ${ROLES.join(", ")}, got ${opts.role}`);
  const { key, record } = await withApiStore(config, (store) =>
    new KeyService(store, store).create(
      { name: opts.name, role: opts.role as Role, rateLimitPerMinute: opts.rate ?? null },
      cliActor(),
    ),
  );
  if (opts.json) {
    console.log(JSON.stringify({ key, id: record.id, name: record.name, role: record.role }));
    return;
  }
  console.log(key);
  process.stderr.write(
    `vigil: key ${record.id} (${record.name}, ${record.role}); it is shown this once, only its hash is kept\n`,
  );
}

export async function keysListCommand(config: Config, opts: { json?: boolean }) {
  const keys = await withApiStore(config, (store) => new KeyService(store, store).list());
  if (opts.json) {
    console.log(JSON.stringify({ keys }));
    return;
  }
  if (keys.length === 0)
    console.log("no API keys; make one with vigil keys create --role admin --name <name>");
  for (const k of keys)
    console.log(
      `${k.id}  ${k.role.padEnd(8)} ${k.revokedTs === null ? "active " : "revoked"}  created ${iso(k.createdTs)}  last used ${iso(k.lastUsedTs)}  ${k.name}`,
    );
}

export async function keysRevokeCommand(config: Config, id: string) {
  const record = await withApiStore(config, (store) => new KeyService(store, store).revoke(id, cliActor()));
  console.log(`revoked ${record.id} (${record.name}, ${record.role}) at ${iso(record.revokedTs)}`);
}

export interface AuditOptions {
  since?: string;
  until?: string;
  action?: string;
  key?: string;
  limit: number;
  cursor?: string;
  verify?: boolean;
  json?: boolean;
}

/** The audit log newest first, or `--verify`: is the hash chain unbroken? */
export async function auditCommand(config: Config, opts: AuditOptions): Promise<boolean> {
  return withApiStore(config, async (store) => {
    if (opts.verify) {
      const v = await store.verifyAudit();
      if (opts.json) console.log(JSON.stringify(v));
      else
        console.log(
          v.ok
            ? `audit log intact: ${v.entries} entries${v.anchor ? ` after entry ${v.anchor.seq} (trimmed by retention; anchor ${v.anchor.hash.slice(0, 16)}…)` : ""}`
            : `audit log BROKEN at entry ${v.brokenAt} (after ${v.entries} good entries)`,
        );
      return v.ok;
    }
    let since: number | undefined;
    let until: number | undefined;
    try {
      since = opts.since ? parseTime(opts.since) : undefined;
      until = opts.until ? parseTime(opts.until) : undefined;
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const page = await store.listAudit({
      since,
      until,
      action: opts.action,
      keyId: opts.key,
      limit: opts.limit,
      cursor: opts.cursor,
    });
    if (opts.json) {
      console.log(JSON.stringify(page));
      return true;
    }
    if (page.items.length === 0) console.log("no audit entries");
    for (const e of page.items)
      console.log(
        `${String(e.seq).padStart(6)} ${iso(e.ts)}  ${e.actor.name}${e.actor.keyId ? ` (${e.actor.keyId}, ${e.actor.role})` : ""}  ${e.action}${e.target ? ` ${e.target}` : ""}  ${e.outcome}${e.status !== null ? ` ${e.status}` : ""}  ${JSON.stringify(e.summary)}`,
      );
    if (page.nextCursor) console.log(`more: --cursor ${page.nextCursor}`);
    return true;
  });
}
