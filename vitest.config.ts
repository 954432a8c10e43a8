import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

/**
 * The package's entry points as a user imports them, resolved to the sources: "floe" is the Node build
 * (src/index.node.ts) in Node projects and the Workers build (src/index.ts) inside workerd, as package.json's
 * "exports" conditions pick them in a user's project.
 */
function floeAlias(runtime: "node" | "workerd") {
  const src = (path: string) => new URL(path, import.meta.url).pathname;
  return [
    { find: /^floe$/, replacement: src(runtime === "node" ? "./src/index.node.ts" : "./src/index.ts") },
    { find: /^floe\/testing$/, replacement: src("./src/testing/index.ts") },
    { find: /^floe\/kafka$/, replacement: src("./src/connectors/kafka/index.ts") },
  ];
}

export default defineConfig({
  test: {
    projects: [
      {
        resolve: { alias: floeAlias("node") },
        test: {
          name: "unit",
          // templates/project: the operator tests of the project `floe init` writes (its engine test runs in the
          // packaged project: test/package/package.test.ts).
          include: ["src/**/*.test.ts", "bench/**/*.test.ts", "workers/**/*.test.ts", "templates/project/test/clicks.test.ts"],
          environment: "node",
        },
      },
      {
        // Inside workerd, through the vitest plugin: objects, eviction, the Worker's fetch.
        resolve: { alias: floeAlias("workerd") },
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
        resolve: { alias: floeAlias("node") },
        test: {
          name: "sim",
          include: ["test/sim/**/*.test.ts"],
          environment: "node",
          testTimeout: 60_000,
        },
      },
      {
        // Node side: the bundled Worker in Miniflare, restarts, SIGKILL, fault injection.
        resolve: { alias: floeAlias("node") },
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
        resolve: { alias: floeAlias("node") },
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
        // The package as a user gets it (npm pack, floe init, npm install, the project's npm test and wrangler deploy
        // --dry-run), in `npm test` and so in CI; alone: `npm run test:package`. About a minute of its own workerd,
        // vitest and wrangler processes: it runs after every other project (a later group), so that it neither
        // slows them on a small machine nor is slowed by them past its children's timeouts.
        test: {
          name: "package",
          include: ["test/package/**/*.test.ts"],
          environment: "node",
          testTimeout: 600_000,
          hookTimeout: 600_000,
          sequence: { groupOrder: 1 },
        },
      },
      {
        // The dashboard in a real Chromium, driven by playwright-core.
        resolve: { alias: floeAlias("node") },
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
