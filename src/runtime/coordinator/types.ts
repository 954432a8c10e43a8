/**
 * What the Coordinator's RPC methods take and answer (the HTTP API hands
 * them on), in one place for the folder.
 */
import type { ParallelismOverride } from "../../graph/plan.js";
import type { JobStatusName } from "./coordinator-store.js";

export type { JobStatusName };

/** What `GET /v1/jobs/:job` answers. */
export interface JobStatus {
  readonly name: string;
  readonly status: JobStatusName;
  readonly attempt: number;
  /** Parallelism per operator uid. */
  readonly parallelism: Record<string, number>;
  readonly vertices: { id: string; name: string; parallelism: number }[];
  readonly restarts: number;
  readonly last_error: string | null;
  readonly start_time: number | null;
  readonly end_time: number | null;
  readonly latest_completed_checkpoint: number | null;
}

/** What `POST /v1/jobs/:job/start` takes. */
export interface StartRequest {
  readonly parallelism?: ParallelismOverride;
  readonly config?: Record<string, unknown>;
  /** A savepoint id (`savepoint-<n>`) to start from. */
  readonly fromSavepoint?: string;
  /** A retained checkpoint id to start from. */
  readonly fromCheckpoint?: number;
  /** Drop state of operators the job no longer has, instead of refusing. */
  readonly allowNonRestoredState?: boolean;
}

/** What a savepoint trigger is for. */
export type SavepointAction = "keep" | "stop" | "cancel";

/**
 * How a savepoint's state is written: canonical (every subtask writes its
 * whole state in the portable format) or native (subtasks take an ordinary,
 * possibly incremental, snapshot — a shorter barrier — and the coordinator
 * copies the files it references into the savepoint's folder).
 */
export type SavepointFormat = "canonical" | "native";

/** The state of a savepoint, as `GET /v1/jobs/:job/savepoints/:trigger_id` answers it. */
export interface SavepointStatus {
  readonly trigger_id: string;
  readonly status: "IN_PROGRESS" | "COMPLETED" | "FAILED";
  readonly id: string | null;
  readonly location: string | null;
  readonly failure_message: string | null;
}
