/**
 * The wire vocabulary between objects: record batches and control signals
 * on channels, what a receiver answers, what the coordinator deploys, and
 * the RPC interfaces of the Subtask and the Coordinator as the other side
 * sees them. One place, so that every object speaks the same protocol.
 */
import type { CheckpointConfig } from "../api/checkpoint-options.js";
import type { SinkMetrics } from "../api/types.js";
import type { AckResult } from "../checkpoint/pending-checkpoint.js";
import type { ChannelStateHandle, KeyedStateHandle, SubtaskAck } from "../checkpoint/types.js";
import type { KeyGroupRange } from "../graph/key-groups.js";
import type { ExecutionPlan, ParallelismOverride } from "../graph/plan.js";
import type { StartingOffsets } from "../storage/stream-options.js";
import type { BroadcastSnapshot } from "../state/broadcast-state.js";
/**
 * A channel is (upstream vertex, upstream subtask) → one receiving subtask;
 * its id names the sender. When one upstream vertex feeds a vertex through
 * several inputs (`a.connect(a)`, a stream and a side output of one
 * operator), each input after the first is a lane of its own, with its own
 * sequence numbers, credits, barriers and watermarks: `vertex/index#lane`.
 */
export function channelId(vertex: string, index: number, lane?: number): string {
  return lane === undefined ? `${vertex}/${index}` : `${vertex}/${index}#${lane}`;
}

/** Fields every channel message carries. */
interface ChannelHeader {
  /** Job attempt of the sender: a receiver drops messages of older attempts (fencing). */
  readonly attempt: number;
  readonly channel: string;
  /** Per-channel sequence number, from 1: order and de-duplication. */
  readonly seq: number;
}

/**
 * A batch of records. `records` is the JSON text of an array of the
 * records' values: one string crosses RPC far cheaper than an object graph,
 * which would be structured-cloned record by record. Keys do not travel:
 * on a keyed edge the receiver computes each key again from the parsed
 * value (see `batch-encoding.ts`).
 */
export interface BatchMessage extends ChannelHeader {
  readonly kind: "batch";
  readonly count: number;
  readonly records: string;
  /**
   * The records' event times: the JSON text of an array as long as the
   * records (null where a record has none), present only when some record
   * has one.
   */
  readonly timestamps?: string;
  /**
   * Where the records were read (batch-encoding.ts `encodeOrigins`): sent
   * only on the edges into an async operator and into the vertices that
   * feed one, when some record has one, so that its failures name the
   * source offset.
   */
  readonly origins?: string;
}

/** The sender will send nothing more on this channel (a bounded source ended). */
export interface EndOfInputMessage extends ChannelHeader {
  readonly kind: "end";
}

/**
 * Checkpoint barrier N: everything the sender emitted before it belongs to
 * checkpoint N, everything after to N+1 (Chandy-Lamport's marker).
 */
export interface BarrierMessage extends ChannelHeader {
  readonly kind: "barrier";
  readonly checkpointId: number;
  /** When the coordinator triggered the checkpoint (for start delay). */
  readonly triggerMs: number;
  readonly isSavepoint: boolean;
  /**
   * Sent ahead of the records queued before it (unaligned): a receiver takes
   * it on arrival and persists what it overtook as in-flight data.
   */
  readonly priority?: boolean;
}

/**
 * The sender's event-time watermark (Flink's Watermark and
 * WatermarkStatus in one message): no record with a timestamp at or below
 * it follows on this channel, unless late. Sent when the sender's
 * watermark advanced or its idleness changed, in order with records and
 * barriers. Not in-flight data of an unaligned checkpoint: a restore starts
 * watermarks afresh.
 */
export interface WatermarkMessage extends ChannelHeader {
  readonly kind: "watermark";
  /** Milliseconds of event time; null while the sender has none yet. */
  readonly watermarkMs: number | null;
  /** The sender reads nothing that could move its watermark (all its inputs idle): it holds no one back. */
  readonly idle: boolean;
}

/** Anything that travels in-band on a channel. */
export type ChannelMessage = BatchMessage | EndOfInputMessage | BarrierMessage | WatermarkMessage;

/** The body of a channel message, before the writer adds its header. */
export type ChannelBody =
  | { kind: "batch"; count: number; records: string; timestamps?: string; origins?: string }
  | { kind: "end" }
  | { kind: "watermark"; watermarkMs: number | null; idle: boolean }
  | { kind: "barrier"; checkpointId: number; triggerMs: number; isSavepoint: boolean; priority?: boolean };

/** What a receiver answers to a channel message: expected outcomes are values. */
export type DeliveryResult =
  | "accepted"
  /** Already received (a retry): not applied again. */
  | "duplicate"
  /** From an attempt older than the receiver's: dropped. */
  | "stale-attempt"
  /** The receiver is not deployed for this attempt (yet, or any more). */
  | "not-deployed"
  /** A sequence number was skipped: a message was lost, the channel cannot go on. */
  | "gap"
  /** The receiver is failed or canceling. */
  | "closed";

// ---- deployment and metrics ------------------------------------------------

/** State a subtask starts from: one completed checkpoint's part for it. */
export interface RestoreSpec {
  readonly checkpointId: number;
  /** In-flight data of an unaligned checkpoint, replayed before any new input. */
  readonly channelState?: ChannelStateHandle | null;
  /** Keyed state handles per operator uid (every old subtask's, when rescaled). */
  readonly keyed: Readonly<Record<string, readonly KeyedStateHandle[]>>;
  /** Source positions per source uid, merged over the old subtasks. */
  readonly sources: Readonly<Record<string, Record<string, number>>>;
  /** Async I/O operators: the records to request again, per operator uid (absent: none). */
  readonly inFlight?: Readonly<Record<string, readonly unknown[]>>;
  /** Broadcast state per operator uid (absent: none). */
  readonly broadcast?: Readonly<Record<string, BroadcastSnapshot>>;
  /** The event time the subtask starts at (its keyed operators' lowest at the snapshot); absent: none. */
  readonly watermarkMs?: number;
}

/** What the Coordinator tells a subtask when it deploys it. */
export interface SubtaskDeployment {
  readonly job: string;
  readonly vertex: string;
  readonly index: number;
  readonly attempt: number;
  readonly plan: ExecutionPlan;
  readonly checkpoint: CheckpointConfig;
  /** Increases with every fresh start of the job: sinks name their transactions with it. */
  readonly runId: number;
  /** Key groups this subtask owns, when its input is keyed. */
  readonly keyGroupRange: KeyGroupRange | null;
  readonly restore: RestoreSpec | null;
}

/** Counters reported as metrics. */
export interface TaskMetrics {
  readonly vertex: string;
  readonly index: number;
  readonly attempt: number;
  readonly status: TaskStatus;
  readonly recordsIn: number;
  readonly recordsOut: number;
  readonly queuedBatches: number;
  /** Time spent waiting for downstream credits. */
  readonly backpressuredMs: number;
  readonly positions: Record<string, number> | null;
  /** Records the source has not read yet, as of its last poll (sources that know it). */
  readonly sourceLag: number | null;
  readonly inputChannels: number;
  readonly stateKeys: number;
  /** Estimated bytes of keyed state held in memory (see docs/state-backend.md). */
  readonly stateBytesInMemory?: number;
  /** Keyed-state entries evicted to the local image under the memory budget, since the task started. */
  readonly stateEntriesEvicted?: number;
  /** Keyed-state entries read back from the local image (after a restore or an eviction), since the task started. */
  readonly stateReadbacks?: number;
  /** Milliseconds the input loop waited for keyed state's changes to be sealed, over budget with nothing to evict, since the task started. */
  readonly stateStalledMs?: number;
  /** Blocks of keyed state a lazy restore from R2 has still to read (0 once whole). */
  readonly stateRestoreBlocksMissing?: number;
  /** Blocks of keyed state this task's restore read lazily (on demand and in the background), once all are in. */
  readonly stateRestoreBlocks?: number;
  /** Reads of a lazy restore that records waited for (key groups not read yet), since the task started. */
  readonly stateRestoreDemandReads?: number;
  /** Milliseconds records and timers waited for a lazy restore's reads, since the task started. */
  readonly stateRestoreWaitMs?: number;
  readonly pendingSinkBytes: number;
  readonly sinks: Record<string, SinkMetrics>;
  readonly lastCheckpointId: number;
  /** Event time: the minimum watermark over the active input channels (null: none yet, or a source: no input). */
  readonly inputWatermarkMs: number | null;
  /** Event time: the watermark this subtask last sent downstream (a source's own; null: none yet). */
  readonly outputWatermarkMs: number | null;
  /** Every input of the subtask (or partition of a source) is idle: its watermark holds no one back. */
  readonly watermarkIdle: boolean;
  /** Timers of keyed process functions waiting to fire, over both time domains. */
  readonly timersPending: number;
  /** Records this attempt routed to dead-letter outputs. */
  readonly deadLetters?: number;
  /** Windows holding contents in the vertex's window operator (null: it has none, or the subtask is still restoring). */
  readonly openWindows: number | null;
  /** The async I/O operator heading the vertex, if any: its counters since this attempt started. */
  readonly asyncIo?: AsyncIoMetrics | null;
}

/** An async I/O operator's counters in one subtask. */
export interface AsyncIoMetrics {
  /** Records in the operator now: waiting for a connection, in flight, or done and not emitted yet. */
  readonly inFlight: number;
  /** Requests started, retries included. */
  readonly requests: number;
  readonly retries: number;
  /** Records whose timeout passed. */
  readonly timeouts: number;
}

export type TaskStatus = "created" | "running" | "finished" | "failed" | "canceled";


// ---- RPC interfaces ------------------------------------------------------------

/** What a heartbeat finds at a subtask. */
export type SubtaskHealth = "running" | "finished" | "failed" | "lost";

/**
 * The reason a Coordinator's or Subtask's `reset()` gives `ctx.abort`: the
 * platform fails later calls on the stub that reset the object with it, so
 * a caller that sees it knows the object was reset (floe/testing's job
 * harness checks it).
 */
export const RESET_REASON = "reset requested";

/** What a subtask answers to a deploy. */
export type DeployResult = { ok: true } | { ok: false; message: string };

/** What a Subtask object offers the coordinator and its upstream subtasks (its RPC methods). */
export interface SubtaskApi {
  deploy(d: SubtaskDeployment): Promise<DeployResult>;
  start(attempt: number): Promise<void>;
  push(message: ChannelMessage): Promise<DeliveryResult>;
  /** `stopAfter`: a source reads nothing after this barrier; `drain`: it sends the end of time before it. */
  triggerCheckpoint(attempt: number, checkpointId: number, triggerMs: number, isSavepoint: boolean, stopAfter?: boolean, drain?: boolean): Promise<boolean>;
  notifyCheckpointComplete(attempt: number, checkpointId: number): Promise<void>;
  notifyCheckpointAborted(attempt: number, checkpointId: number): Promise<void>;
  ping(attempt: number): Promise<SubtaskHealth>;
  cancel(attempt?: number): Promise<void>;
  metrics(): Promise<TaskMetrics | null>;
}

/** What the Coordinator object offers its subtasks: their reports (every one fenced by the attempt). */
export interface CoordinatorReports {
  acknowledgeCheckpoint(ack: SubtaskAck & { checkpointId: number }): Promise<AckResult>;
  declineCheckpoint(attempt: number, checkpointId: number, reason: string): Promise<void>;
  reportFailure(attempt: number, message: string): Promise<void>;
  reportEndOfData(attempt: number, vertex: string, index: number): Promise<void>;
  reportFinished(attempt: number, vertex: string, index: number): Promise<void>;
}

// ---- the Coordinator's control RPC (the HTTP API hands these on) ----------------

/** Flink's job statuses. */
export type JobStatusName = "CREATED" | "RUNNING" | "RESTARTING" | "FAILING" | "FAILED" | "CANCELED" | "FINISHED";

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
  /** Where HTTP sources begin without a snapshot (with one: only "earliest", for its truncated offsets). */
  readonly starting_offsets?: StartingOffsets;
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
