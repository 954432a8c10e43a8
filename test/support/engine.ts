/**
 * A local floe engine for floe's own tests: floe/testing's job harness
 * (src/testing/local-engine.ts) over the bundles test/support/build.ts
 * built, the production Worker's or the test Worker's (with test-only
 * jobs), with Durable Object and R2 storage persisted to a folder so that
 * a test can restart the engine over the same state.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { type LocalEngine, startEngine as startLocalEngine } from "../../src/testing/local-engine.js";
import { loadBuiltWorker } from "../../src/testing/worker-build.js";
import { BUNDLE_DIR, TEST_BUNDLE_DIR } from "./build.js";

import { waitFor as waitUntil } from "../../src/testing/wait.js";

export const TEST_TOKEN = "test-admin-token";

/** A running engine: floe/testing's LocalEngine. */
export type Engine = LocalEngine;

/** A fresh folder for persisted state. */
export function tempDir(prefix = "floe-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Starts the engine over `persistDir` (a new folder when omitted). */
export async function startEngine(
  options: {
    persistDir?: string;
    token?: string;
    bindings?: Record<string, string>;
    /** Run the test Worker, with test-only jobs. */
    testJobs?: boolean;
    /** Run this bundle (of test/support/build.ts) instead. */
    script?: string;
  } = {},
): Promise<Engine> {
  const dir = options.script ? dirname(options.script) : options.testJobs ? TEST_BUNDLE_DIR : BUNDLE_DIR;
  return startLocalEngine({
    worker: loadBuiltWorker(dir),
    persistDir: options.persistDir ?? tempDir(),
    adminToken: options.token ?? TEST_TOKEN,
    bindings: options.bindings,
  });
}

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes. */
export function waitFor<T>(fn: () => Promise<T | undefined | false | null>, timeoutMs = 20_000, what = "condition"): Promise<T> {
  return waitUntil(fn, { timeoutMs, what });
}

/** Every row of a table sink's table, following `next_cursor` page by page. */
export function readTable<V = unknown>(engine: Engine, table: string): Promise<Map<string, V>> {
  return engine.readTable<V>(table);
}
