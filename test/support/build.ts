/**
 * Bundles the Workers once per test run, the way `wrangler deploy` would,
 * so that Node-side tests run the real bundles in workerd through
 * Miniflare: the production Worker, and the test Worker (with test-only
 * jobs) from test/fixtures.
 */
import { execFileSync } from "node:child_process";
import { resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "../..");
export const BUNDLE_DIR = resolve(ROOT, ".build/worker");
export const BUNDLE = resolve(BUNDLE_DIR, "index.js");
export const TEST_BUNDLE_DIR = resolve(ROOT, ".build/test-worker");
export const TEST_BUNDLE = resolve(TEST_BUNDLE_DIR, "worker.js");
/** The "upgrade" job's versions, each its own Worker. */
export const UPGRADE_BUNDLES = [1, 2, 3].map((v) => resolve(ROOT, `.build/upgrade-v${v}/worker-v${v}.js`));

function wrangler(args: string[]): void {
  execFileSync(process.execPath, [resolve(ROOT, "node_modules/wrangler/bin/wrangler.js"), ...args], {
    cwd: ROOT,
    stdio: "pipe",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" },
  });
}

/** vitest globalSetup: build both bundles. */
export default function setup(): void {
  // Several vitest projects list this globalSetup; they run in one process, so build once.
  if (process.env.FLOE_BUNDLES_BUILT === String(process.pid)) return;
  wrangler(["deploy", "--dry-run", "--outdir", BUNDLE_DIR]);
  wrangler(["deploy", "--dry-run", "--config", "test/fixtures/wrangler.toml", "--outdir", TEST_BUNDLE_DIR]);
  for (const v of [1, 2, 3]) {
    wrangler(["deploy", "--dry-run", "--config", "test/fixtures/wrangler.toml", "--outdir", resolve(ROOT, `.build/upgrade-v${v}`), `test/fixtures/upgrade/worker-v${v}.ts`]);
  }
  process.env.FLOE_BUNDLES_BUILT = String(process.pid);
}
