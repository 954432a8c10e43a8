/**
 * The vocabulary of the checkpoint protocol shared by the coordinator, the
 * subtasks and the stores: acknowledgements, state handles, metadata.
 */
import type { KeyGroupRange } from "../graph/key-groups.js";
import type { BroadcastSnapshot } from "../state/broadcast-state.js";

/**
 * One sorted run of the local image uploaded as a run file
 * (src/state/runs/run-file.ts). Runs are shared: a checkpoint references
 * every run its state is made of, and uploads only those no earlier
 * checkpoint of the subtask uploaded (the run of its changes, and what a
 * compaction merged since).
 */
export interface RunFileRef {
  /** R2 key. */
  readonly file: string;
  /** The image's store it belongs to: the operator's states or its timers. */
  readonly store: "states" | "timers";
  readonly bytes: number;
  readonly entries: number;
  /**
   * The key groups of the file that are this handle's state, when the file
   * holds others too: a file that a restore at a higher parallelism shares
   * between subtasks instead of rewriting each one's part. A restore reads
   * only these. Absent: the whole file is.
   */
  readonly keyGroups?: KeyGroupRange;
}

/**
 * Where one operator's keyed state of one subtask lives in a checkpoint.
 * Either an ordered chain of state files (a full snapshot followed by the
 * increments after it; restoring applies them in order), or, with `runs`,
 * the run files of the subtask's local image (newer runs win; restoring
 * imports them as runs).
 */
export interface KeyedStateHandle {
  /** R2 keys, oldest first; the first is a full snapshot. With `runs`, their files in the same order. */
  readonly files: readonly string[];
  /** The state as sorted runs, oldest first within each store (absent: state files in the snapshot format). */
  readonly runs?: readonly RunFileRef[];
  /** Key groups the files cover. */
  readonly keyGroups: { readonly start: number; readonly end: number };
  /** Bytes of all files (state size). */
  readonly stateBytes: number;
  /** Bytes uploaded for this checkpoint (the newest file). */
  readonly checkpointedBytes: number;
  readonly entries: number;
}

/**
 * The one handle of `handles` written for exactly `range`, if that is all
 * there is: the restored subtask then owns its files (its next increments
 * extend them, and their entry count is its own). Otherwise the job was
 * rescaled, or the operator had no state.
 */
export function ownHandle(handles: readonly KeyedStateHandle[], range: { readonly start: number; readonly end: number }): KeyedStateHandle | undefined {
  const h = handles.length === 1 ? handles[0] : undefined;
  return h && h.keyGroups.start === range.start && h.keyGroups.end === range.end ? h : undefined;
}

/** What one subtask reports when its part of a checkpoint is durable. */
export interface SubtaskAck {
  readonly subtask: string;
  readonly attempt: number;
  /** Keyed state per operator uid. */
  readonly keyed: Readonly<Record<string, KeyedStateHandle>>;
  /** Source positions per source uid (partition → next offset). */
  readonly sources: Readonly<Record<string, Record<string, number>>>;
  /** Sink transactions per sink uid (opaque to the coordinator). */
  readonly sinks: Readonly<Record<string, unknown>>;
  /** Async I/O operators: the records whose requests were in flight, per operator uid (absent or empty: none). */
  readonly inFlight?: Readonly<Record<string, readonly unknown[]>>;
  /** Broadcast state per operator uid: from subtask 0, and from any subtask whose part was unaligned (absent: none or empty). */
  readonly broadcast?: Readonly<Record<string, BroadcastSnapshot>>;
  readonly syncMs: number;
  readonly asyncMs: number;
  readonly alignmentMs: number;
  /** Time from trigger until the barrier reached this subtask. */
  readonly startDelayMs: number;
  readonly ackTimestamp: number;
  readonly checkpointedBytes: number;
  readonly stateBytes: number;
  /** Unaligned checkpoints: the subtask's in-flight data, if it had any. */
  readonly channelState?: ChannelStateHandle | null;
  /** Whether the subtask took its part unaligned. */
  readonly unaligned?: boolean;
  /**
   * The subtask's event time at its snapshot: null when it had no watermark
   * (or had reached the end of time, as after a drain). A restore starts no
   * lower, so records replayed after it are late exactly when they were.
   */
  readonly watermarkMs?: number | null;
}

/** Where a subtask's in-flight data of an unaligned checkpoint lives, and its size. */
export interface ChannelStateHandle {
  readonly file: string;
  readonly bytes: number;
}

/** The commit point of a checkpoint, written last as `_metadata`. */
export interface CheckpointMetadata {
  readonly version: 1;
  readonly job: string;
  readonly checkpointId: number;
  readonly kind: "CHECKPOINT" | "SAVEPOINT";
  readonly triggerTimestamp: number;
  readonly completedTimestamp: number;
  readonly attempt: number;
  readonly maxParallelism: number;
  /** Per operator uid: per subtask id, its part. */
  readonly operators: Readonly<Record<string, OperatorState>>;
  /** In-flight data of an unaligned checkpoint, per subtask id (`vertex/index`). */
  readonly channels?: Readonly<Record<string, ChannelStateHandle>>;
}

/** One operator's part of a checkpoint. */
export interface OperatorState {
  readonly parallelism: number;
  readonly keyed: Readonly<Record<string, KeyedStateHandle>>;
  readonly sources: Readonly<Record<string, Record<string, number>>>;
  readonly sinks: Readonly<Record<string, unknown>>;
  /**
   * An async I/O operator's records in flight at the snapshot, per subtask
   * id, in arrival order (subtasks that had none are left out). Restored
   * to the same subtask index, or dealt round-robin when the parallelism changed.
   */
  readonly inFlight?: Readonly<Record<string, readonly unknown[]>>;
  /** Per subtask id, the watermark of the subtask that held this keyed operator at the snapshot (null: none). */
  readonly watermarks?: Readonly<Record<string, number | null>>;
  /**
   * A broadcast process function's broadcast state, once for the operator:
   * subtask 0's copy (absent: empty), restored to every subtask at any
   * parallelism; `own` keeps another subtask's copy where it differs (an
   * unaligned part whose in-flight data held broadcast records that
   * subtask 0 had applied), restored to that subtask at the same parallelism.
   */
  readonly broadcast?: { readonly state?: BroadcastSnapshot; readonly own?: Readonly<Record<string, BroadcastSnapshot>> };
}
