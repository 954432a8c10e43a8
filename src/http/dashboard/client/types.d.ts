/**
 * The API answers the dashboard reads, for the JSDoc of the browser files.
 * Types only: the browser never loads this file.
 *
 * Where the server builds an answer in a module free of Workers types, the
 * type is taken from that module, so a renamed field fails the dashboard's
 * type check.
 */
import type { checkpointDetail, checkpointOverview } from "../../../checkpoint/checkpoint-stats.js";
import type { JobStatus, JobStatusName, SavepointStatus } from "../../../runtime/messages.js";
import type { metricsBody } from "../../metrics.js";
import type { MetricsSample, SavepointEntry, VertexRate } from "./helpers.js";

/** `GET /v1/jobs/:job/checkpoints`. */
export type CheckpointOverview = ReturnType<typeof checkpointOverview>;
/** One entry of the checkpoint history. */
export type HistoryEntry = CheckpointOverview["history"][number];
/** `GET /v1/jobs/:job/checkpoints/:id`. */
export type CheckpointDetail = ReturnType<typeof checkpointDetail>;
/** `GET /v1/jobs/:job/metrics`. */
export type JobMetrics = ReturnType<typeof metricsBody>;
/** One vertex (operator chain) of the metrics. */
export type VertexMetrics = JobMetrics["vertices"][number];
/** One subtask of the metrics. */
export type SubtaskMetrics = JobMetrics["subtasks"][number];

export type { JobStatus, JobStatusName, SavepointStatus };

/** One stream of `GET /v1/streams` (src/http/streams.ts builds it). */
export interface StreamSummary {
  stream: string;
  partition_count: number;
  retention_ms: number;
  retention_bytes: number;
  max_bytes: number;
  records: number;
  bytes: number;
  /** Per job, the records it has not checkpointed past. */
  lag: Record<string, number>;
}

/** The page's state, kept by `app.js` and read by `render.js`. */
export interface PageState {
  /** Bumped whenever an answer in flight should be dropped (sign-out, another job selected). */
  generation: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  jobs: JobStatus[];
  jobName: string | null;
  job: JobStatus | null;
  metrics: JobMetrics | null;
  sample: MetricsSample | null;
  rates: Record<string, VertexRate>;
  overview: CheckpointOverview | null;
  detail: CheckpointDetail | null;
  /** The detail shows a checkpoint the user clicked, not the latest. */
  detailPinned: boolean;
  /** The vertex whose subtasks are shown (clicked in the graph), if any. */
  vertex: string | null;
  /** Per job, the savepoints seen in this tab, by checkpoint id. */
  savepoints: Record<string, Map<number, SavepointEntry>>;
  /** The ingestion streams, with sizes and each job's lag. */
  streams: StreamSummary[];
  /** The action running, if any. */
  busy: string | null;
  polling: boolean;
  pollAgain: boolean;
}

/** Something to put in an element: a node, text, or a (nested) list of them; null, undefined and false put nothing. */
export type Child = Node | string | number | boolean | null | undefined | readonly Child[];
