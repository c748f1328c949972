import { execFileSync } from "node:child_process";

export interface NvidiaGpu {
  name: string;
  driver: string;
  memoryMiB: number;
}

/** The first NVIDIA GPU nvidia-smi reports, or undefined where there is none (or no driver). */
export function nvidiaGpu(): NvidiaGpu | undefined {
  try {
    const out = execFileSync(
      "nvidia-smi",
      ["--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"],
      { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 10_000 },
    );
    const [name, driver, memory] = out
      .split("\n")[0]!
      .split(",")
      .map((s) => s.trim());
    return name ? { name, driver: driver ?? "?", memoryMiB: Number(memory) } : undefined;
  } catch {
    return undefined;
  }
}
