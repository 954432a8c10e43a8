/**
 * The Worker's bindings, as wrangler.toml declares them. One place, so that
 * the Worker, the objects and the connectors agree on names.
 */
import type { Coordinator } from "./coordinator/coordinator.js";
import type { StreamPartition } from "./stream-partition.js";
import type { Subtask } from "./subtask/subtask.js";
import type { TablePartition } from "./table-partition.js";

export interface FloeEnv {
  COORDINATOR: DurableObjectNamespace<Coordinator>;
  SUBTASK: DurableObjectNamespace<Subtask>;
  STREAM_PARTITION: DurableObjectNamespace<StreamPartition>;
  TABLE_PARTITION: DurableObjectNamespace<TablePartition>;
  /** Checkpoint and savepoint storage. */
  CHECKPOINTS: R2Bucket;
  /** Output of file sinks. */
  FILES?: R2Bucket;
  /** Bearer token of the control API (a Wrangler secret; locally from .dev.vars). */
  FLOE_ADMIN_TOKEN?: string;
}
