import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["lib/**/*.test.ts", "services/**/*.test.ts", "cli/**/*.test.ts", "test/**/*.test.ts"],
    // One Kafka broker for the run, started when the first Kafka test asks for it (see the file).
    globalSetup: ["lib/testing/kafka/global-setup.ts"],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Model inference saturates both cores; parallel files would only thrash.
    fileParallelism: false,
    reporters: ["default"],
  },
});
