import { destination, pino, type Logger } from "pino";
import type { Config } from "../config/index.ts";

export type { Logger };

/** JSON lines on stderr (stdout stays for command output), one child per component. */
export function createLogger(name: string, config: Pick<Config, "log">): Logger {
  return pino({ name, level: config.log.level, base: { pid: process.pid } }, destination(2));
}
