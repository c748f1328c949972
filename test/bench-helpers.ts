import { childProcesses } from "../cli/commands/rtsp-scene.ts";

/**
 * The children of this process that a bench starts, by name and count: camera decoders and the RTSP test server
 * (vitest's own helpers, such as esbuild, may linger as zombies and are none of a bench's business).
 */
export const benchChildren = () =>
  Object.entries(childProcesses()).filter(([name]) => /^(ffmpeg|python3)/.test(name));
