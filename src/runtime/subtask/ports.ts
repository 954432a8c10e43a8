/**
 * What {@link SubtaskCore} needs from the world, narrowly: the clock and
 * timers, the object's alarm, its SQLite storage, the checkpoint bucket,
 * stubs of other objects, and hooks that observe it. The Durable Object
 * (`subtask.ts`) wires the platform's; the simulator (`test/sim/sim-subtask.ts`)
 * wires a virtual clock, `node:sqlite`, a fake R2 and a faulty network.
 */
import type { Sql } from "../../storage/sql.js";
import type { ChannelMessage, CoordinatorReports, DeliveryResult, SubtaskDeployment } from "../messages.js";
import type { JobRegistry } from "../registry.js";
import type { Task } from "./task.js";
import type { MultipartUpload } from "./task-files.js";

/** A timer that can be cancelled. */
export interface TimerHandle {
  cancel(): void;
}

/** Time and timers (`Date.now()` and `setTimeout` in the object). */
export interface Timers {
  now(): number;
  /** Resolves after `ms`; `sleep(0)` yields the turn to other work. */
  sleep(ms: number): Promise<void>;
  /** Runs `fn` on a later turn, after `ms`. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
}

/** The object's one alarm. */
export interface AlarmPort {
  set(atMs: number): Promise<void> | void;
  delete(): Promise<void> | void;
}

/** An object read from the checkpoint bucket: streamed, or as text. */
export interface StoredObject {
  readonly body: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;
  text(): Promise<string>;
  arrayBuffer(): Promise<ArrayBuffer>;
}

/** The subset of R2 a subtask uses. */
export interface ObjectStore {
  /** Stores `body` under `key` (a Blob keeps large files out of the JS heap). */
  put(key: string, body: Blob | string): Promise<unknown>;
  /** The object, or `length` bytes of it from `offset`. */
  get(key: string, options?: { range: { offset: number; length: number } }): Promise<StoredObject | null>;
  /** A multipart upload (run files larger than one part). */
  createMultipartUpload(key: string): Promise<MultipartUpload>;
  /** Deletes up to 1,000 keys (the files of a canceled task's unacknowledged snapshots). */
  delete(keys: string[]): Promise<unknown>;
}

/** What a subtask calls on another subtask. */
export interface SubtaskPush {
  push(message: ChannelMessage): Promise<DeliveryResult>;
}

/** Stubs of other objects, by Durable Object name. */
export interface Stubs {
  /** A stub of a subtask; the core keeps one per downstream subtask per deployment (calls on it stay in order). */
  subtask(name: string): SubtaskPush;
  /** A stub of the job's coordinator; the core asks for a fresh one per report. */
  coordinator(name: string): CoordinatorReports;
}

/**
 * Hooks that watch the core, each a no-op unless given. Production passes
 * none; the simulator aims resets at these moments and watches for the
 * signatures of known bugs.
 */
export interface SubtaskObserver {
  /** A deploy arrived (before it waits for an older one). */
  deploying?(d: SubtaskDeployment): void;
  /** A task was built for `d`, before its restore. */
  taskCreated?(task: Task, d: SubtaskDeployment): void;
  /** A restore starts; `done` when it ended, however it ended. */
  restoring?(d: SubtaskDeployment): { done(): void };
  /** The task of `d` is installed and answers calls. */
  installed?(d: SubtaskDeployment): void;
  /** A batch is about to be offered to the task. */
  processing?(): void;
  /** The task is being canceled. */
  closing?(): void;
  /** A state file's key is taken: the synchronous part of a snapshot is under way. */
  snapshotting?(uid: string, checkpointId: number): void;
  /** A sink transaction is sealed (the synchronous part of a snapshot). */
  sealing?(uid: string, txn: number): void;
  /** Sealed transactions after `txn` were dropped by a restore of `attempt`. */
  droppedAfter?(uid: string, txn: number, dropped: readonly number[], attempt: number): void;
  /** A published transaction's rows were dropped. */
  dropped?(uid: string, txn: number): void;
  /** A checkpoint's changes start to be written to the image, or a snapshot yields between its turns. */
  imageWrite?(): void;
  /** A turn of the image's background work (a compaction, the deletion of dead pages) is about to run. */
  merging?(): void;
}

/**
 * Deliberately broken behaviour, for the simulator's broken variants only
 * (each must be caught). Production never sets these.
 */
export interface SubtaskFaultSeams {
  /**
   * The image's compaction unpublishes its inputs in one turn and publishes
   * its output in the next (the name is from the row image it replaced,
   * whose merge deleted a chunk before applying it: the same mistake).
   */
  readonly mergeDeletesFirst?: boolean;
  /** Staging rows are deleted when they are read for publishing, before the publish. */
  readonly dropBeforePublish?: boolean;
  /** A deploy does not check whether a newer attempt superseded it. */
  readonly noDeployFencing?: boolean;
  /**
   * Not a bug: a restore that could read the object's own image reads R2
   * instead, as a rescaled subtask or a new object must (the simulator
   * drives the import of run files through its faults this way).
   */
  readonly skipLocalRestore?: () => boolean;
  /**
   * Not a bug: a restore from R2 reads every block before the first
   * record, as before lazy restores (the simulator alternates both).
   */
  readonly eagerRestore?: () => boolean;
  /** Not a bug: a lazy restore reads this many bytes at once in the background (the simulator's: a block), so records meet blocks not read yet. */
  readonly restoreChunkBytes?: number;
  /** Not a bug: the milliseconds a lazy restore's background reads wait between two chunks (the simulator's). */
  readonly restorePauseMs?: number;
  /** Not a bug: the image's block size (the simulator's small states make many blocks, so that reads and restores meet several). */
  readonly imageBlockBytes?: number;
  /**
   * Not a bug: a memory budget below the documented minimum, with local
   * recovery, so that the simulator's few small keys are evicted, read
   * back and flushed between checkpoints.
   */
  readonly memoryBudgetBytes?: number;
  /**
   * Not a bug: timers fired in slices of this many (production:
   * `FIRE_SLICE_TIMERS`), so that the simulator's few windows end in several
   * slices, with faults between them.
   */
  readonly fireSliceTimers?: number;
}

/** Everything {@link SubtaskCore} is built from. */
export interface SubtaskPorts {
  readonly registry: JobRegistry;
  readonly timers: Timers;
  readonly alarm: AlarmPort;
  readonly sql: Sql;
  readonly bucket: ObjectStore;
  readonly stubs: Stubs;
  /** The Worker's bindings, handed to connectors. */
  readonly env: unknown;
  /**
   * Runs before a task is deployed, in turn with other deploys: throwing
   * refuses the deployment with the error's message (the Subtask object's
   * `beforeDeploy` hook).
   */
  readonly beforeDeploy?: (deployment: SubtaskDeployment) => void | Promise<void>;
  readonly observer?: SubtaskObserver;
  readonly seams?: SubtaskFaultSeams;
}
