/**
 * {@link CoordinatorStorage} in memory, statement for statement what
 * src/runtime/coordinator-store.ts does in SQLite: values round-trip
 * through JSON (a job record read and mutated is not saved until saveJob),
 * rows are ordered as the queries order them, and the history is trimmed
 * the same way. It is the coordinator's durable storage: it outlives resets.
 */
import type { CheckpointRecord } from "../../src/checkpoint/checkpoint-stats.js";
import type { CheckpointMetadata, SubtaskAck } from "../../src/checkpoint/types.js";
import { type CheckpointRowStatus, type CoordinatorStorage, INITIAL_JOB, type JobRecord } from "../../src/runtime/coordinator/coordinator-store.js";

/** Same as the SQLite store's HISTORY_ROWS_MAX. */
const HISTORY_ROWS_MAX = 200;

interface Row {
  id: number;
  status: CheckpointRowStatus;
  is_savepoint: number;
  attempt: number;
  trigger_ms: number;
  end_ms: number | null;
  expected: string;
  failure: string | null;
  external_path: string | null;
  discarded: number;
  metadata: string | null;
}

/** What the simulator wants to hear about (trace and oracle). */
export interface StorageEvents {
  jobSaved?(before: JobRecord | undefined, after: JobRecord): void;
  checkpointCompleted?(id: number): void;
  checkpointFailed?(id: number, failure: string): void;
}

export class MemoryCoordinatorStorage implements CoordinatorStorage {
  private jobJson: string | undefined;
  private readonly rows = new Map<number, Row>();
  /** checkpoint id → subtask → ack JSON. */
  private readonly ackRows = new Map<number, Map<string, string>>();

  constructor(private readonly events: StorageEvents = {}) {}

  job(): JobRecord {
    return this.jobJson
      ? { ...INITIAL_JOB, ...(JSON.parse(this.jobJson) as JobRecord) }
      : { ...INITIAL_JOB, ended: [], finished: [], failureTimesMs: [], restores: [] };
  }

  saveJob(j: JobRecord): void {
    const before = this.jobJson ? (JSON.parse(this.jobJson) as JobRecord) : undefined;
    this.jobJson = JSON.stringify(j);
    this.events.jobSaved?.(before, JSON.parse(this.jobJson) as JobRecord);
  }

  insertPending(id: number, attempt: number, triggerMs: number, expected: string[], isSavepoint: boolean): void {
    if (this.rows.has(id)) throw new Error("UNIQUE constraint failed: checkpoints.id");
    this.rows.set(id, {
      id,
      status: "IN_PROGRESS",
      is_savepoint: isSavepoint ? 1 : 0,
      attempt,
      trigger_ms: triggerMs,
      end_ms: null,
      expected: JSON.stringify(expected),
      failure: null,
      external_path: null,
      discarded: 0,
      metadata: null,
    });
    // The three trimming statements, each over the rows left by the one before.
    for (const id of this.beyondHistory()) this.ackRows.delete(id);
    for (const id of this.beyondHistory()) if (this.rows.get(id)!.status !== "COMPLETED") this.rows.delete(id);
    for (const id of this.beyondHistory()) if (this.rows.get(id)!.discarded === 1) this.rows.delete(id);
  }

  /** `SELECT id FROM checkpoints ORDER BY id DESC LIMIT -1 OFFSET HISTORY_ROWS_MAX`. */
  private beyondHistory(): number[] {
    return [...this.rows.keys()].sort((a, b) => b - a).slice(HISTORY_ROWS_MAX);
  }

  pending(id: number) {
    const r = this.rows.get(id);
    if (!r) return undefined;
    return { attempt: r.attempt, triggerMs: r.trigger_ms, expected: JSON.parse(r.expected) as string[], isSavepoint: r.is_savepoint === 1, status: r.status };
  }

  pendingIds(): { id: number; triggerMs: number }[] {
    return [...this.rows.values()]
      .filter((r) => r.status === "IN_PROGRESS")
      .sort((a, b) => a.id - b.id)
      .map((r) => ({ id: r.id, triggerMs: r.trigger_ms }));
  }

  addAck(id: number, ack: SubtaskAck): boolean {
    let m = this.ackRows.get(id);
    if (m?.has(ack.subtask)) return false;
    if (!m) this.ackRows.set(id, (m = new Map()));
    m.set(ack.subtask, JSON.stringify(ack));
    return true;
  }

  acks(id: number): SubtaskAck[] {
    // The primary key (checkpoint_id, subtask) orders the rows by subtask.
    const m = this.ackRows.get(id);
    if (!m) return [];
    return [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => JSON.parse(v) as SubtaskAck);
  }

  setStatus(id: number, status: CheckpointRowStatus): void {
    const r = this.rows.get(id);
    if (r) r.status = status;
  }

  complete(id: number, endMs: number, externalPath: string, metadata: CheckpointMetadata): boolean {
    const r = this.rows.get(id);
    if (!r || r.status !== "COMPLETING") return false;
    r.status = "COMPLETED";
    r.end_ms = endMs;
    r.external_path = externalPath;
    r.metadata = JSON.stringify(metadata);
    this.events.checkpointCompleted?.(id);
    return true;
  }

  fail(id: number, endMs: number, failure: string): boolean {
    const r = this.rows.get(id);
    if (!r || (r.status !== "IN_PROGRESS" && r.status !== "COMPLETING")) return false;
    r.status = "FAILED";
    r.end_ms = endMs;
    r.failure = failure;
    this.events.checkpointFailed?.(id, failure);
    return true;
  }

  retained(): { id: number; metadata: CheckpointMetadata; externalPath: string }[] {
    return [...this.rows.values()]
      .filter((r) => r.status === "COMPLETED" && r.discarded === 0 && r.is_savepoint === 0)
      .sort((a, b) => b.id - a.id)
      .map((r) => ({ id: r.id, metadata: JSON.parse(r.metadata!) as CheckpointMetadata, externalPath: r.external_path! }));
  }

  discard(ids: number[]): void {
    for (const id of ids) {
      const r = this.rows.get(id);
      if (r) r.discarded = 1;
    }
  }

  records(): CheckpointRecord[] {
    return [...this.rows.values()].sort((a, b) => b.id - a.id).map((r) => this.toRecord(r));
  }

  record(id: number): CheckpointRecord | undefined {
    const r = this.rows.get(id);
    return r ? this.toRecord(r) : undefined;
  }

  /** Checkpoints completed so far (the simulator's count; history trimming aside). */
  completedIds(): number[] {
    return [...this.rows.values()].filter((r) => r.status === "COMPLETED").map((r) => r.id);
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
