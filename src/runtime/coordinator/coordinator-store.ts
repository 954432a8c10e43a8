/**
 * The Coordinator's own SQLite storage: the job record, and one row per
 * checkpoint with its acknowledgements. Pending checkpoints live here, not
 * in memory, so that a coordinator that restarts keeps collecting acks:
 * the checkpoint coordinator builds a `PendingCheckpoint` from a row and its
 * acks, and stores the ack it accepted. Written against the {@link Sql}
 * port, the same statements run in the object and in the simulator.
 */
import type { CheckpointRecord, RestoreRecord } from "../../checkpoint/checkpoint-stats.js";
import type { CheckpointMetadata, SubtaskAck } from "../../checkpoint/types.js";
import type { ExecutionPlan } from "../../graph/plan.js";
import type { Sql } from "../../storage/sql.js";
import type { RunConfig } from "../job-config.js";
import type { JobStatusName } from "../messages.js";


/** The job record. */
export interface JobRecord {
  status: JobStatusName;
  attempt: number;
  plan: ExecutionPlan | null;
  config: RunConfig | null;
  restarts: number;
  lastError: string | null;
  startTime: number | null;
  endTime: number | null;
  /** Subtasks whose input ended (checkpointing on): triggered directly, finished once a later checkpoint completed. */
  ended: string[];
  finished: string[];
  runningSinceMs: number;
  lastCheckpointId: number;
  lastTriggerMs: number | null;
  lastEndMs: number | null;
  consecutiveFailures: number;
  failureTimesMs: number[];
  backoffRestarts: number;
  restartAtMs: number | null;
  restores: RestoreRecord[];
  /** Increases with every fresh start (not with restarts after failures). */
  runId: number;
  /** Checkpoints of this run have ids from here on. */
  runFirstCheckpointId: number;
  /** The savepoint or checkpoint this run started from. */
  runRestoredFrom: { checkpointId: number; savepoint: boolean } | null;
  /** The parallelism the run was started with (to check the plan against the code). */
  startParallelism: number | Record<string, number> | null;
  /** The savepoint in progress, and what to do once it completed. */
  /** `drain`: a stop whose sources send the end of time before its barrier. */
  pendingSavepoint: { id: number; action: "keep" | "stop" | "cancel"; format: "canonical" | "native"; drain?: boolean } | null;
}

export const INITIAL_JOB: JobRecord = {
  status: "CREATED",
  attempt: 0,
  plan: null,
  config: null,
  restarts: 0,
  lastError: null,
  startTime: null,
  endTime: null,
  ended: [],
  finished: [],
  runningSinceMs: 0,
  lastCheckpointId: 0,
  lastTriggerMs: null,
  lastEndMs: null,
  consecutiveFailures: 0,
  failureTimesMs: [],
  backoffRestarts: 0,
  restartAtMs: null,
  restores: [],
  runId: 0,
  runFirstCheckpointId: 1,
  runRestoredFrom: null,
  pendingSavepoint: null,
  startParallelism: null,
};

/** Checkpoint rows kept for statistics. */
const HISTORY_ROWS_MAX = 200;

type Row = {
  id: number;
  status: CheckpointRecord["status"] | "COMPLETING";
  is_savepoint: number;
  attempt: number;
  trigger_ms: number;
  end_ms: number | null;
  expected: string;
  failure: string | null;
  external_path: string | null;
  discarded: number;
  metadata: string | null;
};

/** The coordinator's storage: its job record and checkpoint rows. Synchronous, as a Durable Object's SQLite is. */
export interface CoordinatorStorage {
  job(): JobRecord;
  saveJob(j: JobRecord): void;
  insertPending(id: number, attempt: number, triggerMs: number, expected: string[], isSavepoint: boolean): void;
  /** A pending (or completing) checkpoint: its attempt, trigger time and expected subtasks. */
  pending(id: number): { attempt: number; triggerMs: number; expected: string[]; isSavepoint: boolean; status: CheckpointRowStatus } | undefined;
  pendingIds(): { id: number; triggerMs: number }[];
  /** Stores an ack the pending checkpoint accepted (at most one per subtask). */
  addAck(id: number, ack: SubtaskAck): void;
  /** The acks of checkpoint `id`, ordered by subtask id. */
  acks(id: number): SubtaskAck[];
  /** The subtasks that acknowledged checkpoint `id` (their acks unread). */
  ackedSubtasks(id: number): string[];
  setStatus(id: number, status: CheckpointRowStatus): void;
  /** Marks a completing checkpoint completed; false if it was failed meanwhile. */
  complete(id: number, endMs: number, externalPath: string, metadata: CheckpointMetadata): boolean;
  /** Fails a pending or completing checkpoint; false if it was neither. */
  fail(id: number, endMs: number, failure: string): boolean;
  /** Completed, not yet discarded checkpoints (not savepoints), newest first. */
  retained(): { id: number; metadata: CheckpointMetadata; externalPath: string }[];
  discard(ids: number[]): void;
  records(): CheckpointRecord[];
  record(id: number): CheckpointRecord | undefined;
}

/** Status of a checkpoint row. */
export type CheckpointRowStatus = CheckpointRecord["status"] | "COMPLETING";

/** {@link CoordinatorStorage} in a Durable Object's SQLite. */
export class CoordinatorStore implements CoordinatorStorage {
  constructor(private readonly sql: Sql) {
    sql.exec(`CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS checkpoints (
      id INTEGER PRIMARY KEY, status TEXT NOT NULL, is_savepoint INTEGER NOT NULL, attempt INTEGER NOT NULL,
      trigger_ms INTEGER NOT NULL, end_ms INTEGER, expected TEXT NOT NULL, failure TEXT, external_path TEXT,
      discarded INTEGER NOT NULL DEFAULT 0, metadata TEXT)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS acks (checkpoint_id INTEGER NOT NULL, subtask TEXT NOT NULL, ack TEXT NOT NULL, PRIMARY KEY (checkpoint_id, subtask))`);
  }

  job(): JobRecord {
    const row = this.sql.exec<{ v: string }>(`SELECT v FROM meta WHERE k = 'job'`).toArray()[0];
    return row ? { ...INITIAL_JOB, ...(JSON.parse(row.v) as JobRecord) } : { ...INITIAL_JOB, ended: [], finished: [], failureTimesMs: [], restores: [] };
  }

  saveJob(j: JobRecord): void {
    this.sql.exec(`INSERT INTO meta (k, v) VALUES ('job', ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v`, JSON.stringify(j));
  }

  insertPending(id: number, attempt: number, triggerMs: number, expected: string[], isSavepoint: boolean): void {
    this.sql.exec(
      `INSERT INTO checkpoints (id, status, is_savepoint, attempt, trigger_ms, expected) VALUES (?, 'IN_PROGRESS', ?, ?, ?, ?)`,
      id,
      isSavepoint ? 1 : 0,
      attempt,
      triggerMs,
      JSON.stringify(expected),
    );
    this.sql.exec(`DELETE FROM acks WHERE checkpoint_id IN (SELECT id FROM checkpoints ORDER BY id DESC LIMIT -1 OFFSET ?)`, HISTORY_ROWS_MAX);
    this.sql.exec(`DELETE FROM checkpoints WHERE id IN (SELECT id FROM checkpoints ORDER BY id DESC LIMIT -1 OFFSET ?) AND status != 'COMPLETED'`, HISTORY_ROWS_MAX);
    this.sql.exec(`DELETE FROM checkpoints WHERE id IN (SELECT id FROM checkpoints ORDER BY id DESC LIMIT -1 OFFSET ?) AND discarded = 1`, HISTORY_ROWS_MAX);
  }

  /** A pending (or completing) checkpoint: its attempt, trigger time and expected subtasks. */
  pending(id: number): { attempt: number; triggerMs: number; expected: string[]; isSavepoint: boolean; status: Row["status"] } | undefined {
    const r = this.sql.exec<Row>(`SELECT * FROM checkpoints WHERE id = ?`, id).toArray()[0];
    if (!r) return undefined;
    return { attempt: r.attempt, triggerMs: r.trigger_ms, expected: JSON.parse(r.expected) as string[], isSavepoint: r.is_savepoint === 1, status: r.status };
  }

  pendingIds(): { id: number; triggerMs: number }[] {
    return this.sql
      .exec<{ id: number; trigger_ms: number }>(`SELECT id, trigger_ms FROM checkpoints WHERE status = 'IN_PROGRESS' ORDER BY id`)
      .toArray()
      .map((r) => ({ id: r.id, triggerMs: r.trigger_ms }));
  }

  addAck(id: number, ack: SubtaskAck): void {
    this.sql.exec(`INSERT INTO acks (checkpoint_id, subtask, ack) VALUES (?, ?, ?)`, id, ack.subtask, JSON.stringify(ack));
  }

  acks(id: number): SubtaskAck[] {
    return this.sql.exec<{ ack: string }>(`SELECT ack FROM acks WHERE checkpoint_id = ? ORDER BY subtask`, id).toArray().map((r) => JSON.parse(r.ack) as SubtaskAck);
  }

  ackedSubtasks(id: number): string[] {
    return this.sql.exec<{ subtask: string }>(`SELECT subtask FROM acks WHERE checkpoint_id = ?`, id).toArray().map((r) => r.subtask);
  }

  setStatus(id: number, status: Row["status"]): void {
    this.sql.exec(`UPDATE checkpoints SET status = ? WHERE id = ?`, status, id);
  }

  /** Marks a completing checkpoint completed; false if it was failed meanwhile (e.g. by a failover). */
  complete(id: number, endMs: number, externalPath: string, metadata: CheckpointMetadata): boolean {
    const r = this.sql
      .exec(
        `UPDATE checkpoints SET status = 'COMPLETED', end_ms = ?, external_path = ?, metadata = ? WHERE id = ? AND status = 'COMPLETING' RETURNING id`,
        endMs,
        externalPath,
        JSON.stringify(metadata),
        id,
      )
      .toArray();
    return r.length > 0;
  }

  fail(id: number, endMs: number, failure: string): boolean {
    const r = this.sql.exec(`UPDATE checkpoints SET status = 'FAILED', end_ms = ?, failure = ? WHERE id = ? AND status IN ('IN_PROGRESS', 'COMPLETING') RETURNING id`, endMs, failure, id).toArray();
    return r.length > 0;
  }

  /** Completed, not yet discarded checkpoints (not savepoints), newest first. */
  retained(): { id: number; metadata: CheckpointMetadata; externalPath: string }[] {
    return this.sql
      .exec<Row>(`SELECT * FROM checkpoints WHERE status = 'COMPLETED' AND discarded = 0 AND is_savepoint = 0 ORDER BY id DESC`)
      .toArray()
      .map((r) => ({ id: r.id, metadata: JSON.parse(r.metadata!) as CheckpointMetadata, externalPath: r.external_path! }));
  }

  discard(ids: number[]): void {
    for (const id of ids) this.sql.exec(`UPDATE checkpoints SET discarded = 1 WHERE id = ?`, id);
  }

  records(): CheckpointRecord[] {
    return this.sql
      .exec<Row>(`SELECT * FROM checkpoints ORDER BY id DESC`)
      .toArray()
      .map((r) => this.toRecord(r));
  }

  record(id: number): CheckpointRecord | undefined {
    const r = this.sql.exec<Row>(`SELECT * FROM checkpoints WHERE id = ?`, id).toArray()[0];
    return r ? this.toRecord(r) : undefined;
  }

  private toRecord(r: Row): CheckpointRecord {
    return {
      id: r.id,
      status: r.status === "COMPLETING" ? "IN_PROGRESS" : r.status,
      isSavepoint: r.is_savepoint === 1,
      triggerMs: r.trigger_ms,
      endMs: r.end_ms,
      numSubtasks: (JSON.parse(r.expected) as string[]).length,
      failure: r.failure,
      externalPath: r.external_path,
      discarded: r.discarded === 1,
      acks: this.acks(r.id),
    };
  }
}
