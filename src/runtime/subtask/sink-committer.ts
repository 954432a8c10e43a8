/**
 * The two-phase commit of a subtask's sinks, as the checkpoint protocol
 * drives it (Flink's TwoPhaseCommitSinkFunction, seen from the task):
 *
 * - at a barrier, each sink seals its open transaction as transaction N
 *   (pre-commit), in the same turn as the snapshot;
 * - at-least-once sinks publish right after the barrier; exactly-once ones
 *   when checkpoint N completes everywhere (notifyCheckpointComplete);
 * - without checkpointing, sinks seal and publish on a timer;
 * - at the end of input (checkpointing on) transactions stay open: the next
 *   checkpoint seals them, its completion publishes them, and only then is
 *   the subtask finished, so that a failover at any point replays without
 *   duplicates (FLIP-147).
 */
import type { SinkTransactionHandle, SinkWriter } from "../../api/types.js";

/** Without checkpoints, how often sinks publish. */
export const SINK_FLUSH_INTERVAL_MS = 200;

/** The sinks of one task and when they publish. */
export class SinkCommitter {
  /** Without checkpoints: when the sinks last published. */
  private lastFlushMs: number;
  /** Without checkpoints: the last transaction sealed by this task (ids grow across attempts). */
  private localTxn = 0;
  /**
   * The last checkpoint this subtask took before its input ended (checkpointing
   * on); undefined while input remains. The first later checkpoint to complete
   * finishes the subtask.
   */
  private endedAfterId: number | undefined;
  /** All output is published: nothing is left to seal. */
  private finished = false;
  /** An at-barrier commit started outside the consumer loop (unaligned), which the loop awaits before its next message. */
  private beforeNext: Promise<void> | undefined;

  constructor(
    private readonly sinks: ReadonlyMap<string, SinkWriter>,
    /** Checkpointing is on for the run: sinks commit on completion, not on a timer. */
    private readonly checkpointing: boolean,
    private readonly attempt: number,
    private readonly now: () => number,
  ) {
    this.lastFlushMs = now();
  }

  /** The last checkpoint taken before the input ended; undefined while input remains. */
  get endedAfter(): number | undefined {
    return this.endedAfterId;
  }

  /** After a restore to `checkpointId` (0: none): sealed transactions of completed checkpoints are published, later ones dropped. */
  async recover(checkpointId: number): Promise<void> {
    for (const [uid, sink] of this.sinks) {
      try {
        await sink.recover(checkpointId);
      } catch (e) {
        throw new Error(`sink "${uid}" could not commit the transactions of checkpoint ${checkpointId}: ${(e as Error)?.message ?? e}`);
      }
    }
  }

  /**
   * Pre-commit: each sink seals its open transaction as transaction N, in
   * the snapshot's turn. Without checkpointing (a savepoint of such a run),
   * sinks keep publishing on their timer instead; once finished, nothing is
   * left to seal.
   */
  preCommit(checkpointId: number): Record<string, SinkTransactionHandle> {
    const handles: Record<string, SinkTransactionHandle> = {};
    if (this.checkpointing && !this.finished) for (const [uid, sink] of this.sinks) handles[uid] = sink.preCommit(checkpointId);
    return handles;
  }

  /** At-least-once sinks publish at the barrier; exactly-once ones wait for the checkpoint to complete. */
  commitAtBarrier(checkpointId: number): Promise<void> {
    return this.commitSinks("at_least_once", checkpointId);
  }

  /**
   * {@link commitAtBarrier} for a barrier handled outside the consumer loop
   * (unaligned): the loop awaits it, through {@link takeCommitBeforeNext},
   * before its next message, as at an aligned barrier.
   */
  commitAtBarrierBeforeNext(checkpointId: number): void {
    const commit = this.commitAtBarrier(checkpointId);
    // Not lost: the chained promise below rejects the same way, and the consumer loop awaits it (and fails the task).
    commit.catch(() => undefined);
    this.beforeNext = this.beforeNext ? this.beforeNext.then(() => commit) : commit;
  }

  /** The at-barrier commits the consumer loop must await before its next message, if any. */
  takeCommitBeforeNext(): Promise<void> | undefined {
    const p = this.beforeNext;
    this.beforeNext = undefined;
    return p;
  }

  /** Checkpoint N completed everywhere: exactly-once sinks publish what it sealed. */
  commitCompleted(checkpointId: number): Promise<void> {
    return this.commitSinks("exactly_once", checkpointId);
  }

  /** Publishes, one sink after another, what the sinks of one guarantee sealed up to `checkpointId`. */
  private async commitSinks(guarantee: SinkWriter["guarantee"], checkpointId: number): Promise<void> {
    if (!this.checkpointing) return;
    for (const [uid, sink] of this.sinks) {
      if (sink.guarantee === guarantee) await commit(uid, sink, checkpointId);
    }
  }

  /** The input ended after checkpoint `lastCheckpointId` (checkpointing on): the next checkpoint is the final one. */
  inputEnded(lastCheckpointId: number): void {
    this.endedAfterId = lastCheckpointId;
  }

  /** Whether completed checkpoint N was taken after the end of input: all of this subtask's output is out. */
  isFinal(checkpointId: number): boolean {
    return this.endedAfterId !== undefined && checkpointId > this.endedAfterId;
  }

  /**
   * The final checkpoint N completed and committed. Transactions sealed
   * after it are empty (nothing was written after the end): they are
   * dropped.
   */
  async finish(checkpointId: number): Promise<void> {
    this.finished = true;
    try {
      for (const sink of this.sinks.values()) await sink.recover(checkpointId);
    } catch {
      // Only empty transactions are left; a later restore drops them anyway.
    }
  }

  /** Without checkpointing: whether a sink holds output it has not published. */
  pending(): boolean {
    for (const s of this.sinks.values()) if (s.pendingBytes() > 0) return true;
    return false;
  }

  /** Without checkpointing: how long until the sinks publish next (≤ 0: due). */
  flushDueInMs(): number {
    return this.lastFlushMs + SINK_FLUSH_INTERVAL_MS - this.now();
  }

  /** Without checkpointing: publishes when the timer is due. */
  async flushIfDue(): Promise<void> {
    if (this.checkpointing) return;
    if (this.now() - this.lastFlushMs >= SINK_FLUSH_INTERVAL_MS) await this.flush();
  }

  /** Without checkpoints: seal and publish, with transaction ids that grow across attempts. */
  async flush(): Promise<void> {
    this.lastFlushMs = this.now();
    const txn = this.attempt * 1e9 + ++this.localTxn;
    for (const [uid, sink] of this.sinks) {
      sink.preCommit(txn);
      await commit(uid, sink, txn);
    }
  }

  /** Sinks stop publishing: a newer task of this subtask may take over at once. */
  close(): void {
    for (const sink of this.sinks.values()) sink.close?.();
  }
}

async function commit(uid: string, sink: SinkWriter, txn: number): Promise<void> {
  try {
    await sink.commit(txn);
  } catch (e) {
    throw new Error(`sink "${uid}" failed to commit transaction ${txn}: ${(e as Error)?.message ?? e}`);
  }
}
