import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { userInfo } from "node:os";
import type { AuditActor, AuditStore } from "../store/audit-store.ts";
import { InvalidInputError, NotFoundError } from "../store/errors.ts";
import { ROLES, type ApiKeyRecord, type KeyStore, type Role, type StoredApiKey } from "../store/key-store.ts";

/** `vgl_<12 hex: the key's public id>_<43 base64url: 256 random bits>`. */
const KEY = /^vgl_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

// A fast hash is enough: the secret is 256 random bits, so there is nothing to guess; slow hashes (scrypt,
// bcrypt) protect low-entropy passwords and would cost every request milliseconds.
const hashSecret = (secret: string) => createHash("sha256").update(secret).digest("hex");

export function parseKey(token: string): { id: string; secret: string } | undefined {
  const m = KEY.exec(token.trim());
  return m ? { id: m[1]!, secret: m[2]! } : undefined;
}

/** Whoever runs a `vigil` command, as the audit log names them. */
export function cliActor(): AuditActor {
  let user = process.env.USER ?? "unknown";
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry (some containers): keep $USER.
  }
  return { keyId: null, name: `cli:${user}`, role: null };
}

export type Authentication =
  { ok: true; key: StoredApiKey } | { ok: false; reason: "malformed" | "unknown" | "revoked" };

/**
 * API keys for the CLI (`vigil keys`) and the API alike: made here, shown once, stored as a hash; every change
 * is written to the audit log.
 */
export class KeyService {
  private readonly clock: () => number;

  constructor(
    private readonly keys: KeyStore,
    private readonly audit: AuditStore,
    clock: () => number = Date.now,
  ) {
    this.clock = clock;
  }

  async create(
    request: { name: string; role: Role; rateLimitPerMinute?: number | null },
    actor: AuditActor,
    ip: string | null = null,
  ): Promise<{ key: string; record: ApiKeyRecord }> {
    const name = request.name.trim();
    if (!name || name.length > 200) throw new InvalidInputError("a key's name is 1–200 characters");
    if (!ROLES.includes(request.role))
      throw new InvalidInputError(`role must be one of ${ROLES.join(", ")}, got ${request.role}`);
    const limit = request.rateLimitPerMinute ?? null;
    if (limit !== null && !(Number.isInteger(limit) && limit > 0))
      throw new InvalidInputError(`a rate limit is a whole number of requests per minute, got ${limit}`);
    const id = randomBytes(6).toString("hex");
    const secret = randomBytes(32).toString("base64url");
    const stored: StoredApiKey = {
      id,
      name,
      role: request.role,
      hash: hashSecret(secret),
      createdTs: this.clock(),
      revokedTs: null,
      lastUsedTs: null,
      rateLimitPerMinute: limit,
    };
    await this.keys.addKey(stored);
    await this.audit.append({
      ts: stored.createdTs,
      actor,
      action: "key.create",
      target: id,
      outcome: "ok",
      status: null,
      summary: { name, role: request.role, rateLimitPerMinute: limit },
      ip,
    });
    const { hash: _hash, ...record } = stored;
    return { key: `vgl_${id}_${secret}`, record };
  }

  list(): Promise<ApiKeyRecord[]> {
    return this.keys.listKeys();
  }

  async revoke(id: string, actor: AuditActor, ip: string | null = null): Promise<ApiKeyRecord> {
    const record = await this.keys.revokeKey(id, this.clock());
    if (!record) throw new NotFoundError(`no API key ${id}`);
    await this.audit.append({
      ts: this.clock(),
      actor,
      action: "key.revoke",
      target: id,
      outcome: "ok",
      status: null,
      summary: { name: record.name, role: record.role },
      ip,
    });
    return record;
  }

  /** The key a request presented, if it is one of ours and not revoked. */
  async authenticate(token: string): Promise<Authentication> {
    const parsed = parseKey(token);
    if (!parsed) return { ok: false, reason: "malformed" };
    const key = await this.keys.getKey(parsed.id);
    if (!key) return { ok: false, reason: "unknown" };
    const presented = Buffer.from(hashSecret(parsed.secret), "hex");
    if (!timingSafeEqual(presented, Buffer.from(key.hash, "hex"))) return { ok: false, reason: "unknown" };
    if (key.revokedTs !== null) return { ok: false, reason: "revoked" };
    return { ok: true, key };
  }
}
