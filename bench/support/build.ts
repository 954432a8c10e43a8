/**
 * Bundles the test Worker (the example job plus the benchmark jobs of
 * bench/jobs.ts) the way `wrangler deploy` would: the benchmarks need only
 * this bundle, not every bundle the test suite builds.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { buildWorker } from "../../src/testing/worker-build.js";
import { ROOT, TEST_BUNDLE_DIR } from "../../test/support/build.js";

/** The test Worker bundle, at the path the test suite uses (with the description test/support/engine.ts loads). */
export async function buildTestBundle(): Promise<void> {
  await buildWorker({ root: ROOT, config: "test/fixtures/wrangler.toml", outdir: TEST_BUNDLE_DIR });
}

/**
 * A what-if for profiling: the same test Worker bundled with esbuild's
 * keepNames off (`keep_names = false`), which otherwise wraps every
 * function expression in a `__name(fn, "…")` call, that is an
 * Object.defineProperty each time a closure is created. Returns the bundle's path.
 */
export async function buildTestBundleWithoutKeepNames(): Promise<string> {
  const dir = resolve(ROOT, "bench/out/worker-no-keep-names");
  mkdirSync(dir, { recursive: true });
  const config = join(dir, "wrangler.toml");
  const base = readFileSync(resolve(ROOT, "test/fixtures/wrangler.toml"), "utf8");
  // The copy sits one folder deeper than test/fixtures/wrangler.toml: its paths (main, the "floe" aliases) move with it.
  writeFileSync(
    config,
    base
      .replace(/^main = "worker\.ts"$/m, `main = "../../../test/fixtures/worker.ts"${/^keep_names\s*=/m.test(base) ? "" : "\nkeep_names = false"}`)
      .replaceAll('"../../src/', '"../../../src/'),
  );
  // An absolute --outdir: wrangler resolves a relative one against the config's folder for the
  // bundle but against the working directory for its README.
  return (await buildWorker({ root: ROOT, config, outdir: join(dir, "bundle") })).scriptPath;
}
