/**
 * Bundles the test Worker (the example job plus the benchmark jobs of
 * bench/jobs.ts) the way `wrangler deploy` would: the benchmarks need only
 * this bundle, not every bundle the test suite builds.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { ROOT, TEST_BUNDLE_DIR } from "../../test/support/build.js";

function wrangler(config: string, outDir: string): void {
  execFileSync(process.execPath, [resolve(ROOT, "node_modules/wrangler/bin/wrangler.js"), "deploy", "--dry-run", "--config", config, "--outdir", outDir], {
    cwd: ROOT,
    stdio: "pipe",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" },
  });
}

/** The test Worker bundle, at the path the test suite uses. */
export function buildTestBundle(): void {
  wrangler("test/fixtures/wrangler.toml", TEST_BUNDLE_DIR);
}

/**
 * A what-if for profiling: the same test Worker bundled with esbuild's
 * keepNames off (`keep_names = false`), which otherwise wraps every
 * function expression in a `__name(fn, "…")` call, that is an
 * Object.defineProperty each time a closure is created. Returns the bundle's path.
 */
export function buildTestBundleWithoutKeepNames(): string {
  const dir = resolve(ROOT, "bench/out/worker-no-keep-names");
  mkdirSync(dir, { recursive: true });
  const config = join(dir, "wrangler.toml");
  const base = readFileSync(resolve(ROOT, "test/fixtures/wrangler.toml"), "utf8");
  writeFileSync(config, base.replace(/^main = "worker\.ts"$/m, `main = "../../../test/fixtures/worker.ts"\nkeep_names = false`));
  // An absolute --outdir: wrangler resolves a relative one against the config's folder for the
  // bundle but against the working directory for its README.
  wrangler(config, join(dir, "bundle"));
  return join(dir, "bundle", "worker.js");
}
