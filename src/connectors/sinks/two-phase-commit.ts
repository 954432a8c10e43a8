/**
 * The two-phase-commit sink framework (Flink's TwoPhaseCommitSinkFunction,
 * on a Durable Object's storage).
 *
 * - Between barriers, records go into the open transaction: in memory, and
 *   appended to staging rows in the subtask's own SQLite storage once large.
 * - Pre-commit, at barrier N (synchronously, with the snapshot): the open
 *   transaction is staged in full and sealed as transaction N; its handle
 *   goes into the checkpoint.
 * - Commit, on notifyCheckpointComplete(N): every sealed transaction ≤ N is
 *   published, oldest first, then its staging rows are deleted. Publishing
 *   must be idempotent: a crash between publish and delete publishes again.
 * - A checkpoint that was aborted keeps its sealed transaction: it is
 *   committed with the next completed checkpoint (its records will not be
 *   replayed, so dropping it would lose them).
 * - Restore to checkpoint M: transactions after M and the open one are
 *   dropped (their records are replayed); sealed ones up to M are committed.
 *
 * With the at-least-once guarantee a sealed transaction is published at the
 * barrier, without waiting for the checkpoint to complete.
 */
import type { DeliveryGuarantee, SinkMetrics, SinkTransactionHandle, SinkWriter, StagingStore } from "../../api/types.js";
import { FloeError } from "../../errors.js";
import { utf8Length } from "../../storage/record-limits.js";

/** Id of the open transaction in staging. */
export const OPEN_TXN = -1;

/** What a concrete sink provides: how to encode a record and how to publish a transaction. */
export interface SinkPublisher {
  /**
   * Rows with the same key within a transaction coalesce (the last wins), as
   * a table keeps one row per key; such records are encoded once, at the
   * barrier. Throws with a message saying what is wrong with the record.
   */
  keyOf?(record: unknown): string;
  /** Validates and serializes one record; throws with a message saying what is wrong with it. */
  encode(record: unknown): string;
  /** Publishes one transaction's rows. Must be idempotent: it may be repeated after a crash. */
  publish(txn: number, rows: readonly string[]): Promise<void>;
  /** The writer was closed: release connections. */
  close?(): void;
}

/** Open transactions larger than this are appended to staging before the barrier. */
const SPILL_BYTES = 512 * 1024;
/** Staging rows stay well under SQLite's value limit. */
const STAGING_ROW_BYTES = 512 * 1024;

/** Options of {@link TransactionalSinkWriter}. */
export interface TransactionalSinkOptions {
  readonly uid: string;
  readonly guarantee: DeliveryGuarantee;
  readonly staging: StagingStore;
  readonly now: () => number;
}

export type { DeliveryGuarantee, SinkMetrics, SinkTransactionHandle, StagingStore };

export class TransactionalSinkWriter implements SinkWriter {
  private keyed = new Map<string, unknown>();
  private rows: string[] = [];
  private openBytes = 0;
  /** Rows and bytes of the open transaction already moved to staging (spilled). */
  private spilledRows = 0;
  private spilledBytes = 0;
  private lastSealed = 0;
  private committing: Promise<void> = Promise.resolve();
  private readonly sealedAtMs = new Map<number, number>();
  private committed = 0;
  private lastLatencyMs: number | null = null;
  private maxLatencyMs = 0;

  constructor(
    private readonly options: TransactionalSinkOptions,
    private readonly publisher: SinkPublisher,
  ) {}

  get guarantee(): DeliveryGuarantee {
    return this.options.guarantee;
  }

  write(record: unknown): void {
    if (this.publisher.keyOf) {
      this.keyed.set(this.guard(() => this.publisher.keyOf!(record)), record);
      return;
    }
    const text = this.guard(() => this.publisher.encode(record));
    this.rows.push(text);
    this.openBytes += utf8Length(text);
    if (this.openBytes >= SPILL_BYTES) this.stageOpen();
  }

  private guard<T>(fn: () => T, txn?: number): T {
    try {
      return fn();
    } catch (e) {
      const where = txn === undefined ? `the transaction after checkpoint ${this.lastSealed}` : `transaction ${txn}`;
      throw new FloeError("unserializable_record", `sink "${this.options.uid}" cannot serialize a record of ${where}: ${(e as Error)?.message ?? e}`);
    }
  }

  /** Seals the open transaction as transaction `txn` (synchronous, with the snapshot). */
  preCommit(txn: number): SinkTransactionHandle {
    const rows = this.spilledRows + this.keyed.size + this.rows.length;
    const bytes = this.spilledBytes + this.stageOpen(txn);
    this.spilledRows = 0;
    this.spilledBytes = 0;
    this.options.staging.seal(this.options.uid, txn);
    this.lastSealed = txn;
    this.sealedAtMs.set(txn, this.options.now());
    return { txn, rows, bytes };
  }

  /** Publishes every sealed transaction up to `txn`, oldest first, one commit at a time. */
  commit(txn: number): Promise<void> {
    const run = this.committing.then(async () => {
      for (const t of this.options.staging.sealed(this.options.uid)) {
        if (t > txn) break;
        // A closed writer's task was replaced: the new one publishes what is left, never both at once.
        if (this.closed) throw new Error(`sink "${this.options.uid}" was closed before transaction ${t} was published`);
        await this.publisher.publish(t, this.options.staging.rows(this.options.uid, t));
        this.options.staging.drop(this.options.uid, t);
        this.committed++;
        const sealedAt = this.sealedAtMs.get(t);
        this.sealedAtMs.delete(t);
        if (sealedAt !== undefined) {
          this.lastLatencyMs = this.options.now() - sealedAt;
          this.maxLatencyMs = Math.max(this.maxLatencyMs, this.lastLatencyMs);
        }
      }
    });
    // One failed commit must not wedge later ones; the caller sees the failure.
    this.committing = run.catch(() => undefined);
    return run;
  }

  /** After a restore to `checkpointId` (0: none): drop later transactions, commit the rest. */
  async recover(checkpointId: number): Promise<void> {
    this.keyed = new Map();
    this.rows = [];
    this.openBytes = 0;
    this.spilledRows = 0;
    this.spilledBytes = 0;
    this.options.staging.dropAfter(this.options.uid, checkpointId);
    this.lastSealed = checkpointId;
    await this.commit(checkpointId);
  }

  private closed = false;

  close(): void {
    this.closed = true;
    this.publisher.close?.();
  }

  /** Bytes not yet published: staged exactly, plus the open transaction (keyed rows estimated). */
  pendingBytes(): number {
    return this.openBytes + this.keyed.size * 32 + this.options.staging.bytes(this.options.uid);
  }

  metrics(): SinkMetrics {
    return {
      pendingStagedBytes: this.pendingBytes(),
      sealedTransactions: this.options.staging.sealed(this.options.uid).length,
      committedTransactions: this.committed,
      lastCommitLatencyMs: this.lastLatencyMs,
      maxCommitLatencyMs: this.maxLatencyMs,
    };
  }

  /** Moves the open transaction's rows into staging; returns their bytes. */
  private stageOpen(txn?: number): number {
    const rows = this.rows;
    for (const record of this.keyed.values()) rows.push(this.guard(() => this.publisher.encode(record), txn));
    this.rows = [];
    this.keyed = new Map();
    this.openBytes = 0;
    let total = 0;
    for (let start = 0; start < rows.length; ) {
      let bytes = 0;
      let end = start;
      while (end < rows.length) {
        const size = utf8Length(rows[end]) + 1;
        if (end > start && bytes + size > STAGING_ROW_BYTES) break;
        bytes += size;
        end++;
      }
      this.options.staging.append(this.options.uid, OPEN_TXN, rows.slice(start, end));
      total += bytes;
      start = end;
    }
    if (txn === undefined) {
      this.spilledRows += rows.length;
      this.spilledBytes += total;
    }
    return total;
  }
}

/** The encoding most sinks use: the record as JSON text. */
export function encodeJson(record: unknown): string {
  const text = JSON.stringify(record);
  if (text === undefined) throw new TypeError(`${String(record)} is not JSON`);
  return text;
}
