/**
 * floe/testing: test a job's functions and the job itself.
 *
 * - {@link OperatorHarness}: one operator (keyed process function, window,
 *   co-process or broadcast process function…) on its own, with no
 *   runtime: elements, watermarks, processing time, timers, outputs,
 *   snapshot and restore. Microseconds per test.
 *
 * @example
 * import { OperatorHarness } from "floe/testing";
 * const h = OperatorHarness.forOperator(clicks, "count-per-user");
 * h.processElement({ user: "ada" });
 * expect(h.output()).toEqual([{ key: "ada", value: 1 }]);
 */
export { OperatorHarness, type HarnessRecord, type KeyedStateView, type OperatorHarnessOptions } from "./operator-harness.js";
export type { OperatorSnapshot } from "./operator-snapshot.js";
