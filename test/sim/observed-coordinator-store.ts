/**
 * The real {@link CoordinatorStorage}, observed: every call goes to the
 * store it wraps (the shipping `CoordinatorStore` on `node:sqlite`), and
 * what the simulator's trace and oracle want to hear about is reported
 * after the store did it.
 */
import type { CheckpointRecord } from "../../src/checkpoint/checkpoint-stats.js";
import type { CheckpointMetadata, SubtaskAck } from "../../src/checkpoint/types.js";
import type { CheckpointRowStatus, CoordinatorStorage, JobRecord } from "../../src/runtime/coordinator/coordinator-store.js";

/** What the simulator wants to hear about (trace and oracle). */
export interface StorageEvents {
  /** The job record was saved; `before` is the record stored until then (the initial one at first). */
  jobSaved?(before: JobRecord, after: JobRecord): void;
  checkpointCompleted?(id: number): void;
  checkpointFailed?(id: number, failure: string): void;
}

/** A {@link CoordinatorStorage} decorator that reports {@link StorageEvents}. */
export class ObservedCoordinatorStore implements CoordinatorStorage {
  constructor(
    private readonly inner: CoordinatorStorage,
    private readonly events: StorageEvents,
  ) {}

  job(): JobRecord {
    return this.inner.job();
  }

  saveJob(j: JobRecord): void {
    const before = this.inner.job();
    this.inner.saveJob(j);
    this.events.jobSaved?.(before, this.inner.job());
  }

  insertPending(id: number, attempt: number, triggerMs: number, expected: string[], isSavepoint: boolean): void {
    this.inner.insertPending(id, attempt, triggerMs, expected, isSavepoint);
  }

  pending(id: number) {
    return this.inner.pending(id);
  }

  pendingIds(): { id: number; triggerMs: number }[] {
    return this.inner.pendingIds();
  }

  addAck(id: number, ack: SubtaskAck): void {
    this.inner.addAck(id, ack);
  }

  acks(id: number): SubtaskAck[] {
    return this.inner.acks(id);
  }

  ackedSubtasks(id: number): string[] {
    return this.inner.ackedSubtasks(id);
  }

  setStatus(id: number, status: CheckpointRowStatus): void {
    this.inner.setStatus(id, status);
  }

  complete(id: number, endMs: number, externalPath: string, metadata: CheckpointMetadata): boolean {
    const done = this.inner.complete(id, endMs, externalPath, metadata);
    if (done) this.events.checkpointCompleted?.(id);
    return done;
  }

  fail(id: number, endMs: number, failure: string): boolean {
    const failed = this.inner.fail(id, endMs, failure);
    if (failed) this.events.checkpointFailed?.(id, failure);
    return failed;
  }

  retained(): { id: number; metadata: CheckpointMetadata; externalPath: string }[] {
    return this.inner.retained();
  }

  discard(ids: number[]): void {
    this.inner.discard(ids);
  }

  records(): CheckpointRecord[] {
    return this.inner.records();
  }

  record(id: number): CheckpointRecord | undefined {
    return this.inner.record(id);
  }
}
