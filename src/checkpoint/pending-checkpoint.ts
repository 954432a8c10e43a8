/**
 * A checkpoint between trigger and completion: which subtasks must still
 * acknowledge, and what those that did sent. Expected outcomes of an ack are
 * values (Flink's TaskAcknowledgeResult), never exceptions.
 */
import type { SubtaskAck } from "./types.js";

/** What acknowledging a subtask did. */
export type AckResult = "SUCCESS" | "DUPLICATE" | "UNKNOWN" | "DISCARDED";

export class PendingCheckpoint {
  private readonly acks = new Map<string, SubtaskAck>();
  private discarded = false;

  constructor(
    readonly checkpointId: number,
    readonly triggerMs: number,
    /** Subtask ids (`vertex/index`) that must acknowledge. */
    readonly expected: ReadonlySet<string>,
    readonly isSavepoint = false,
  ) {}

  acknowledge(subtask: string, ack: SubtaskAck): AckResult {
    if (this.discarded) return "DISCARDED";
    if (!this.expected.has(subtask)) return "UNKNOWN";
    if (this.acks.has(subtask)) return "DUPLICATE";
    this.acks.set(subtask, ack);
    return "SUCCESS";
  }

  get isFullyAcknowledged(): boolean {
    return !this.discarded && this.acks.size === this.expected.size;
  }

  get acknowledged(): number {
    return this.acks.size;
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
}
