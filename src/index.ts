/**
 * floe: exactly-once stream processing on Durable Objects.
 *
 * @example
 * import { createFloe, job, httpSource, tableSink } from "floe";
 * const floe = createFloe({ jobs: [clicks] });
 * export const { Coordinator, Subtask, StreamPartition, TablePartition } = floe;
 * export default floe.worker;
 */
import { type Floe, type FloeConfig, floeParts } from "./floe-config.js";
import { Coordinator as CoordinatorBase } from "./runtime/coordinator/coordinator.js";
import { StreamPartition } from "./runtime/stream-partition.js";
import { Subtask as SubtaskBase } from "./runtime/subtask/subtask.js";
import { TablePartition } from "./runtime/table-partition.js";

export * from "./public-api.js";

export type { DurableObjectClass, Floe, FloeConfig } from "./floe-config.js";

/**
 * The Worker's default export and its Durable Object classes, bound to a
 * set of jobs.
 *
 * @example
 * const floe = createFloe({ jobs: [clicks], basePath: "/floe" });
 * export const { Coordinator, Subtask, StreamPartition, TablePartition } = floe;
 * export default floe.worker;
 */
export function createFloe(config: FloeConfig): Floe {
  const parts = floeParts(config);
  const registry = parts.registry;
  class Coordinator extends CoordinatorBase {
    protected override readonly registry = registry;
  }
  class Subtask extends SubtaskBase {
    protected override readonly registry = registry;
  }
  return { ...parts, Coordinator, Subtask, StreamPartition, TablePartition };
}
