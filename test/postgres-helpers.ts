import { afterAll, beforeAll } from "vitest";
import { PostgresServer, postgresUnavailableReason } from "../lib/testing/postgres/server.ts";

/**
 * A test file's real PostgreSQL: started in beforeAll (one server per file; a start is a second or two), destroyed
 * in afterAll. `database()` makes a fresh, empty database on it for each store a test opens, so tests share the
 * server but not their rows. Without the Debian binaries `skip` says why (printed once) and the caller skips.
 */
export function usePostgres(label: string) {
  const skip = postgresUnavailableReason();
  if (skip) console.log(`skipping ${label} against a real PostgreSQL: ${skip}`);
  let server: PostgresServer | undefined;
  let count = 0;
  if (!skip) {
    beforeAll(async () => {
      server = await PostgresServer.start();
    });
    afterAll(async () => {
      await server?.destroy();
    });
  }
  return {
    /** Why the PostgreSQL cases skip here, or undefined when they run. */
    skip,
    server: () => {
      if (!server) throw new Error("the PostgreSQL server is not started (used outside a test, or skipped)");
      return server;
    },
    /** A fresh database's connection string. */
    database: async () => {
      if (!server) throw new Error("the PostgreSQL server is not started (used outside a test, or skipped)");
      return server.createDatabase(`t${count++}`);
    },
  };
}
