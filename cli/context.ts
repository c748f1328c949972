import { loadConfig, type Config } from "../lib/config/index.ts";
import { loadVision, type Vision } from "../lib/vision/inference/vision.ts";

export interface GlobalOptions {
  config?: string;
}

export function configFrom(global: GlobalOptions, overrides: Record<string, unknown> = {}): Config {
  return loadConfig({ file: global.config ?? process.env.VIGIL_CONFIG, overrides });
}

/** Model pulls and conversions are reported on stderr so stdout stays clean for --json / ndjson. */
export const logToStderr = (line: string) => process.stderr.write(`vigil: ${line}\n`);

export async function visionFor(config: Config): Promise<Vision> {
  return loadVision(config, logToStderr);
}

export class UsageError extends Error {
  override name = "UsageError";
}

/** Expected failures (bad input, bad config) print one clear line and exit 1; anything else keeps its stack. */
export function reportFailure(err: unknown): never {
  const known = [
    "ConfigError",
    "UsageError",
    "VideoSourceError",
    "ImageDecodeError",
    "ChecksumError",
    "ModelUnavailableError",
    "IrConversionError",
    "ExecutionProviderError",
    "UncalibratedModelError",
    "HeadError",
    "TrainingDataError",
  ];
  if (err instanceof Error && known.includes(err.name)) {
    process.stderr.write(`vigil: ${err.message}\n`);
  } else {
    process.stderr.write(
      `vigil: unexpected failure: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
  }
  process.exit(1);
}
