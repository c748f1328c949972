import { describe, expect, it } from "vitest";
import { isTransient, TransientError } from "./errors.ts";

const withCode = (code: string, message = "x") => Object.assign(new Error(message), { code });

describe("isTransient: the world's failures, waited out; the record's, dead-lettered", () => {
  it("knows a dependency away: sockets, SQLite locks, PostgreSQL restarting or out of connections", () => {
    for (const code of [
      "ECONNREFUSED",
      "ECONNRESET",
      "SQLITE_BUSY",
      "57P01",
      "57P03",
      "53300",
      "08006",
      "40001",
    ])
      expect(isTransient(withCode(code)), code).toBe(true);
    expect(isTransient(new Error("Connection terminated unexpectedly"))).toBe(true);
    expect(isTransient(new TransientError("away"))).toBe(true);
    // Through a cause, as wrapping errors carry it.
    expect(isTransient(new Error("store write failed", { cause: withCode("57P01") }))).toBe(true);
  });

  it("does not excuse what the record or the code did", () => {
    for (const code of ["23505", "22P02", "42P01", "SQLITE_CONSTRAINT"])
      expect(isTransient(withCode(code)), code).toBe(false);
    expect(isTransient(new RangeError("a vector of 511 values"))).toBe(false);
  });
});
