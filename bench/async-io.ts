/**
 * The async I/O workload's constants, shared by its jobs (bench/jobs.ts
 * `benchAsyncJobs`, in the Worker bundle) and the harness
 * (bench/workloads/async-io.ts): one job per result order and capacity,
 * since capacity is part of an async operator's definition.
 */

/** Flink's two orders of results. */
export const ASYNC_MODES = ["ordered", "unordered"] as const;
export type AsyncMode = (typeof ASYNC_MODES)[number];

/** Records per subtask in the operator at once, one job each. */
export const ASYNC_CAPACITIES = [1, 10, 100] as const;

/** How long the lookup server waits before it answers. */
export const LOOKUP_LATENCY_MS = 10;

/** The operator's timeout: far above the server's latency, so that no record times out unless something is wrong. */
export const ASYNC_TIMEOUT_MS = 5000;

/** The job of one order and capacity. */
export function asyncJobName(mode: AsyncMode, capacity: number): string {
  return `bench-async-${mode}-${capacity}`;
}
