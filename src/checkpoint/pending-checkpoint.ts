/**
 * A checkpoint between trigger and completion: which subtasks must
 * acknowledge, and what those that did sent. Expected outcomes of an ack are
 * values (Flink's TaskAcknowledgeResult), never exceptions.
 *
 * The coordinator keeps its pending checkpoints in SQLite so that they
 * survive a restart of its object: it builds a PendingCheckpoint from the
 * stored row and acks, lets it decide, and stores an ack it accepted.
 */
import type { SubtaskAck } from "./types.js";

/** What acknowledging a subtask did. */
export type AckResult = "SUCCESS" | "DUPLICATE" | "UNKNOWN" | "DISCARDED";

/** What a pending checkpoint is made of, as the coordinator stores it. */
export interface PendingCheckpointInit {
  readonly checkpointId: number;
  /** The job attempt that triggered it: acks of any other attempt are discarded. */
  readonly attempt: number;
  readonly triggerMs: number;
  /** Subtask ids (`vertex/index`) that must acknowledge. */
  readonly expected: readonly string[];
  readonly isSavepoint?: boolean;
  /** When it expires (absent: never); an ack at or after it cannot save it. */
  readonly expiresAtMs?: number;
  /** Already completing, completed or failed: it takes no more acks. */
  readonly discarded?: boolean;
}

/** One checkpoint waiting for its acks; it decides what each ack does, and its owner stores the ack it accepted. */
export class PendingCheckpoint {
  readonly checkpointId: number;
  readonly attempt: number;
  readonly triggerMs: number;
  readonly isSavepoint: boolean;
  readonly expiresAtMs: number;
  /** Subtask ids (`vertex/index`) that must acknowledge. */
  readonly expected: ReadonlySet<string>;
  private readonly acks = new Map<string, SubtaskAck>();
  private discarded: boolean;
  private expired = false;

  /** A pending checkpoint with the acks it already has (read back from storage). */
  constructor(init: PendingCheckpointInit, acks: Iterable<SubtaskAck> = []) {
    this.checkpointId = init.checkpointId;
    this.attempt = init.attempt;
    this.triggerMs = init.triggerMs;
    this.isSavepoint = init.isSavepoint ?? false;
    this.expiresAtMs = init.expiresAtMs ?? Number.POSITIVE_INFINITY;
    this.expected = new Set(init.expected);
    this.discarded = init.discarded ?? false;
    for (const a of acks) this.acks.set(a.subtask, a);
  }

  /**
   * Takes `ack` at `nowMs`. An ack of another attempt, or one for a
   * discarded checkpoint, is DISCARDED; one from a subtask not expected is
   * UNKNOWN; an expected ack past the deadline discards the checkpoint
   * ({@link isExpired}) and is DISCARDED; a second ack of a subtask is a
   * DUPLICATE and the first is kept.
   */
  acknowledge(ack: SubtaskAck, nowMs: number): AckResult {
    if (this.discarded || ack.attempt !== this.attempt) return "DISCARDED";
    if (!this.expected.has(ack.subtask)) return "UNKNOWN";
    if (nowMs >= this.expiresAtMs) {
      this.expired = true;
      this.discarded = true;
      return "DISCARDED";
    }
    if (this.acks.has(ack.subtask)) return "DUPLICATE";
    this.acks.set(ack.subtask, ack);
    return "SUCCESS";
  }

  get isFullyAcknowledged(): boolean {
    return !this.discarded && this.acks.size === this.expected.size;
  }

  get acknowledged(): number {
    return this.acks.size;
  }

  /** Whether `subtask` has acknowledged. */
  hasAcknowledged(subtask: string): boolean {
    return this.acks.has(subtask);
  }

  /** The acks received, by subtask id. */
  acknowledgements(): ReadonlyMap<string, SubtaskAck> {
    return this.acks;
  }

  discard(): void {
    this.discarded = true;
  }

  get isDiscarded(): boolean {
    return this.discarded;
  }

  /** Whether an ack came after the deadline: the checkpoint must be failed as expired. */
  get isExpired(): boolean {
    return this.expired;
  }
}
