/**
 * Every PostgreSQL advisory lock Vigil takes, in one place so two never share a key by accident. Advisory locks
 * are per database; the keys are constants so that processes of any release agree on them. Each is 0x7669676c
 * ("vigl") in the high half and a small number of its own in the low half, clear of what other applications
 * sharing the database are likely to pick.
 */
const key = (n: number) => ((0x7669676cn << 32n) | BigInt(n)).toString();

export const LOCKS = {
  /** Held while one process looks at the schema and migrates it (lib/store/postgres/migrations.ts). */
  migrations: key(1),
  /** Held by each audit append and trim: the hash chain needs the true previous entry, whoever writes. */
  auditChain: key(2),
} as const;
