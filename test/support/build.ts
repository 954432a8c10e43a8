/**
 * Bundles the Worker once per test run, the way `wrangler deploy` would,
 * so that Node-side tests run the real bundle in workerd through Miniflare.
 */
import { execFileSync } from "node:child_process";
import { resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "../..");
export const BUNDLE_DIR = resolve(ROOT, ".build/worker");
export const BUNDLE = resolve(BUNDLE_DIR, "index.js");

/** vitest globalSetup: build the bundle. */
export default function setup(): void {
  execFileSync(process.execPath, [resolve(ROOT, "node_modules/wrangler/bin/wrangler.js"), "deploy", "--dry-run", "--outdir", BUNDLE_DIR], {
    cwd: ROOT,
    stdio: "pipe",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" },
  });
}
