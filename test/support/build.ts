/**
 * Bundles the Workers once per test run, the way `wrangler deploy` would
 * (floe/testing's buildWorker), so that Node-side tests run the real
 * bundles in workerd through Miniflare: the production Worker, the test
 * Worker (with test-only jobs) from test/fixtures, and the "upgrade" job's
 * versions. Each folder gets the build's description, which
 * test/support/engine.ts loads.
 */
import { resolve } from "node:path";
import { buildWorker } from "../../src/testing/worker-build.js";

export const ROOT = resolve(import.meta.dirname, "../..");
export const BUNDLE_DIR = resolve(ROOT, ".build/worker");
export const BUNDLE = resolve(BUNDLE_DIR, "index.js");
export const TEST_BUNDLE_DIR = resolve(ROOT, ".build/test-worker");
export const TEST_BUNDLE = resolve(TEST_BUNDLE_DIR, "worker.js");
/** The "upgrade" job's versions, each its own Worker. */
export const UPGRADE_BUNDLES = [1, 2, 3].map((v) => resolve(ROOT, `.build/upgrade-v${v}/worker-v${v}.js`));

/** vitest globalSetup: build the bundles. */
export default async function setup(): Promise<void> {
  // Several vitest projects list this globalSetup; they run in one process, so build once.
  if (process.env.FLOE_BUNDLES_BUILT === String(process.pid)) return;
  await buildWorker({ root: ROOT, outdir: BUNDLE_DIR });
  await buildWorker({ root: ROOT, config: "test/fixtures/wrangler.toml", outdir: TEST_BUNDLE_DIR });
  for (const v of [1, 2, 3]) {
    await buildWorker({ root: ROOT, config: "test/fixtures/wrangler.toml", entry: `test/fixtures/upgrade/worker-v${v}.ts`, outdir: resolve(ROOT, `.build/upgrade-v${v}`) });
  }
  process.env.FLOE_BUNDLES_BUILT = String(process.pid);
}
