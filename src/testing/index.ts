/**
 * floe/testing: test a job's functions and the job itself.
 *
 * - {@link OperatorHarness}: one operator (keyed process function, window,
 *   co-process or broadcast process function…) on its own, with no
 *   runtime: elements, watermarks, processing time, timers, outputs,
 *   snapshot and restore. Microseconds per test.
 * - {@link startEngine}: the project's Worker, bundled as `wrangler deploy`
 *   bundles it, running in Miniflare with persisted state; start jobs,
 *   ingest, wait for checkpoints, read tables, and inject faults (SIGKILL
 *   and restart, subtask and coordinator resets). Node only; needs
 *   `miniflare` 4 and `wrangler` in the project.
 *
 * @example
 * import { OperatorHarness } from "floe/testing";
 * const h = OperatorHarness.forOperator(clicks, "count-per-user");
 * h.processElement({ user: "ada" });
 * expect(h.output()).toEqual([{ key: "ada", value: 1 }]);
 */
export { OperatorHarness, type HarnessRecord, type KeyedStateView, type OperatorHarnessOptions } from "./operator-harness.js";
export type { OperatorSnapshot } from "./operator-snapshot.js";
export { buildWorker, loadBuiltWorker, type BuildWorkerOptions, type BuiltWorker, type ModuleType, type WorkerConfig } from "./worker-build.js";
export { startEngine, LocalEngine, EngineError, TEST_ADMIN_TOKEN, type EngineOptions, type IngestAnswer, type JobStatus } from "./local-engine.js";
export { waitFor, type WaitOptions } from "./wait.js";
