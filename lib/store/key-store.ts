/** Who may do what through the operator API; each role can do everything the one before it can. */
export const ROLES = ["viewer", "operator", "admin"] as const;
export type Role = (typeof ROLES)[number];

export const roleRank = (role: Role) => ROLES.indexOf(role);

/** An API key as listed: never its secret, which is shown once at creation and stored only as a hash. */
export interface ApiKeyRecord {
  /** Public part of the key (`vgl_<id>_<secret>`), safe to log and to name in the audit log. */
  id: string;
  name: string;
  role: Role;
  createdTs: number;
  revokedTs: number | null;
  lastUsedTs: number | null;
  /** Requests per minute for this key; null: the configured default. */
  rateLimitPerMinute: number | null;
}

export interface StoredApiKey extends ApiKeyRecord {
  /** sha256 of the secret, hex. */
  hash: string;
}

/** API keys, hashed; the embedded store keeps them in its SQLite file. */
export interface KeyStore {
  addKey(key: StoredApiKey): Promise<void>;
  getKey(id: string): Promise<StoredApiKey | undefined>;
  listKeys(): Promise<ApiKeyRecord[]>;
  /** Undefined when there is no such key; revoking twice keeps the first time. */
  revokeKey(id: string, ts: number): Promise<ApiKeyRecord | undefined>;
  /** Best effort, for `keys list`: when the key was last accepted. */
  touchKey(id: string, ts: number): Promise<void>;
}
