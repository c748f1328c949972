import type pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { freePort } from "../lib/testing/process.ts";
import {
  migrate,
  schemaVersion,
  SchemaTooNewError,
  type Migration,
} from "../lib/store/postgres/migrations.ts";
import { openPool } from "../lib/store/postgres/pool.ts";
import { usePostgres } from "./postgres-helpers.ts";

const pg15 = usePostgres("the schema migrations");

const STEPS: Migration[] = [
  { version: 1, name: "people", sql: "CREATE TABLE people (id TEXT PRIMARY KEY)" },
  // Not idempotent on purpose: applied twice, it fails (the table exists, the row repeats).
  {
    version: 2,
    name: "photos",
    sql: "CREATE TABLE photos (id TEXT PRIMARY KEY, person TEXT REFERENCES people(id)); INSERT INTO people VALUES ('seed')",
  },
];

describe.skipIf(pg15.skip !== undefined)("versioned PostgreSQL migrations", () => {
  const pools: pg.Pool[] = [];
  const open = async (url: string) => {
    const pool = await openPool(url);
    pools.push(pool);
    return pool;
  };
  afterEach(async () => {
    for (const p of pools.splice(0)) await p.end();
  });
  const tables = async (pool: pg.Pool) =>
    (
      await pool.query<{ t: string }>(
        "SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
      )
    ).rows.map((r) => r.t);

  it("applies the pending steps in order, once, and only the new one after an upgrade", async () => {
    const pool = await open(await pg15.database());
    expect(await schemaVersion(pool, "records")).toBe(0);
    expect(await migrate(pool, "records", STEPS.slice(0, 1))).toEqual({ from: 0, to: 1, applied: [1] });
    expect(await migrate(pool, "records", STEPS)).toEqual({ from: 1, to: 2, applied: [2] });
    expect(await migrate(pool, "records", STEPS)).toEqual({ from: 2, to: 2, applied: [] });
    expect(await schemaVersion(pool, "records")).toBe(2);
    expect(await tables(pool)).toEqual(["people", "photos", "vigil_schema_migrations"]);
    // Another schema in the same database keeps versions of its own.
    expect(await migrate(pool, "other", [{ version: 1, name: "x", sql: "CREATE TABLE x (v INT)" }])).toEqual({
      from: 0,
      to: 1,
      applied: [1],
    });
    expect(await schemaVersion(pool, "records")).toBe(2);
  });

  it("rolls back every step of a start when one fails, keeping the version it found", async () => {
    const pool = await open(await pg15.database());
    const broken: Migration = { version: 3, name: "typo", sql: "CREATE TABLE tags (id TEXT PRIMARY KEYY)" };
    await expect(migrate(pool, "records", [...STEPS, broken])).rejects.toThrow(
      /records migration 3 \(typo\) failed, nothing of this start's migrations was kept: syntax error/,
    );
    expect(await schemaVersion(pool, "records")).toBe(0);
    expect(await tables(pool)).toEqual([]);
  });

  it("refuses a database migrated by a newer release, naming both versions, and changes nothing", async () => {
    const pool = await open(await pg15.database());
    await migrate(pool, "records", STEPS);
    const err = await migrate(pool, "records", STEPS.slice(0, 1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SchemaTooNewError);
    expect((err as Error).message).toMatch(
      /records schema is at version 2, newer than this Vigil knows \(1\)/,
    );
    expect(await schemaVersion(pool, "records")).toBe(2);
  });

  it("lets exactly one of five pools starting at once (as five processes would) migrate; the others find it done", async () => {
    const url = await pg15.database();
    // A slow first step widens the window in which the others arrive.
    const slow: Migration[] = [{ ...STEPS[0]!, sql: `SELECT pg_sleep(0.3); ${STEPS[0]!.sql}` }, STEPS[1]!];
    const starters = await Promise.all(Array.from({ length: 5 }, () => open(url)));
    const results = await Promise.all(starters.map((p) => migrate(p, "records", slow)));
    expect(results.filter((r) => r.applied.length > 0)).toEqual([{ from: 0, to: 2, applied: [1, 2] }]);
    expect(results.filter((r) => r.applied.length === 0)).toHaveLength(4);
    const { rows } = await starters[0]!.query<{ n: number }>("SELECT count(*)::int AS n FROM people");
    expect(rows[0]!.n).toBe(1);
  });

  it("says where it could not connect, without the password", async () => {
    const port = await freePort();
    await expect(openPool(`postgres://vigil:s3cret@127.0.0.1:${port}/records`)).rejects.toThrow(
      new RegExp(
        `^cannot connect to PostgreSQL at postgres://vigil:\\*\\*\\*@127\\.0\\.0\\.1:${port}/records: .*ECONNREFUSED`,
      ),
    );
  });
});
