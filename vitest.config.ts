import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["src/**/*.test.ts", "bench/**/*.test.ts"],
          environment: "node",
        },
      },
      {
        // Inside workerd, through the vitest plugin: objects, eviction, the Worker's fetch.
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: { bindings: { FLOE_ADMIN_TOKEN: "runtime-test-token" } },
          }),
        ],
        test: {
          name: "runtime",
          include: ["test/runtime/**/*.test.ts"],
        },
      },
      {
        // The seeded simulation of the checkpoint protocol: virtual time, simulated objects, network and R2.
        test: {
          name: "sim",
          include: ["test/sim/**/*.test.ts"],
          environment: "node",
          testTimeout: 60_000,
        },
      },
      {
        // Node side: the bundled Worker in Miniflare, restarts, SIGKILL, fault injection.
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          environment: "node",
          globalSetup: ["test/support/build.ts"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        // Against a real Apache Kafka broker (KRaft, one node on 127.0.0.1), started from Maven Central jars.
        test: {
          name: "kafka",
          include: ["test/kafka/**/*.test.ts"],
          environment: "node",
          globalSetup: ["test/support/build.ts", "test/support/kafka-setup.ts"],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        // The dashboard in a real Chromium, driven by playwright-core.
        test: {
          name: "browser",
          include: ["test/browser/**/*.test.ts"],
          environment: "node",
          globalSetup: ["test/support/build.ts"],
          testTimeout: 120_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
