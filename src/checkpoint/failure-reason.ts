/**
 * Why a checkpoint failed: one list of reasons, as Flink's
 * CheckpointFailureReason, so that statistics and the failure counter speak
 * one vocabulary.
 */
export type CheckpointFailureReason =
  /** Not every subtask acknowledged before the timeout. */
  | "CHECKPOINT_EXPIRED"
  /** A subtask could not take its snapshot (e.g. an upload failed). */
  | "CHECKPOINT_DECLINED"
  /** A newer checkpoint completed first. */
  | "CHECKPOINT_SUBSUMED"
  /** Writing the checkpoint metadata failed. */
  | "IO_EXCEPTION"
  /** The job failed over while the checkpoint was pending. */
  | "JOB_FAILOVER"
  /** The job was canceled or finished while the checkpoint was pending. */
  | "JOB_STOPPED"
  /** Source subtasks could not be reached to trigger the checkpoint. */
  | "TRIGGER_FAILED"
  /**
   * The Coordinator object restarted while the checkpoint was pending: it
   * cannot know which subtasks its triggers reached (Flink discards pending
   * checkpoints on a JobManager failover too).
   */
  | "COORDINATOR_RESTARTED";

/** Reasons that count toward the tolerable-failure limit (Flink counts these, not e.g. a failover). */
export function countsAsFailure(reason: CheckpointFailureReason): boolean {
  return reason === "CHECKPOINT_EXPIRED" || reason === "CHECKPOINT_DECLINED" || reason === "IO_EXCEPTION" || reason === "TRIGGER_FAILED";
}
