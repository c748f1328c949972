/**
 * Failures the use-case services and stores report with a kind, so each transport maps them once: the CLI to a
 * one-line message, the HTTP API to 404 / 400 / 422.
 */
export class NotFoundError extends Error {
  override name = "NotFoundError";
}

/** The request itself is wrong (a bad cursor, a threshold outside [-1, 1], an unusable photo). */
export class InvalidInputError extends Error {
  override name = "InvalidInputError";
}
