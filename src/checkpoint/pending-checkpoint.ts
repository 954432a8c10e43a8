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
  /** Every subtask that acknowledged: those of {@link acks}, and those given by id only. */
  private readonly by = new Set<string>();
  private discarded: boolean;
  private expired = false;

  /**
   * A pending checkpoint with the acks it already has (read back from
   * storage), or only the ids of the subtasks that gave them
   * (`acknowledgedBy`): deciding on the next ack needs no more, and a
   * coordinator that read every stored ack for each ack it takes would
   * parse as many acks as the square of its subtasks per checkpoint.
   */
  constructor(init: PendingCheckpointInit, acks: Iterable<SubtaskAck> = [], acknowledgedBy: Iterable<string> = []) {
    this.checkpointId = init.checkpointId;
    this.attempt = init.attempt;
    this.triggerMs = init.triggerMs;
    this.isSavepoint = init.isSavepoint ?? false;
    this.expiresAtMs = init.expiresAtMs ?? Number.POSITIVE_INFINITY;
    this.expected = new Set(init.expected);
    this.discarded = init.discarded ?? false;
    for (const a of acks) {
      this.acks.set(a.subtask, a);
      this.by.add(a.subtask);
    }
    for (const subtask of acknowledgedBy) this.by.add(subtask);
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
    if (this.by.has(ack.subtask)) return "DUPLICATE";
    this.acks.set(ack.subtask, ack);
    this.by.add(ack.subtask);
    return "SUCCESS";
  }

  get isFullyAcknowledged(): boolean {
    return !this.discarded && this.by.size === this.expected.size;
  }

  get acknowledged(): number {
    return this.by.size;
  }

  /** Whether `subtask` has acknowledged. */
  hasAcknowledged(subtask: string): boolean {
    return this.by.has(subtask);
  }

  /** The acks this object holds, by subtask id: those given at construction, and those taken since. */
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
