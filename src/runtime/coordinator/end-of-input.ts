/**
 * The end of a bounded job (Flink's FLIP-147): subtasks report that their
 * input ended, then that they finished. Once every subtask's input ended,
 * the final checkpoint is triggered at once; its completion commits the
 * sinks and finishes the subtasks; once every subtask finished, so has the
 * job. The lists of ended and finished subtasks live in the job record.
 */
import type { CheckpointCoordinator } from "./checkpoint-coordinator.js";
import { channelId } from "../messages.js";
import { type CoordinatorContext, planSubtasks } from "./coordinator-context.js";

/** Takes the reports of a bounded job's subtasks: input ended, finished. */
export class EndOfInput {
  constructor(
    private readonly ctx: CoordinatorContext,
    private readonly checkpoints: CheckpointCoordinator,
  ) {}

  /**
   * A subtask's input ended (checkpointing on). From now on checkpoints
   * trigger it directly — no barrier will reach it — and a checkpoint
   * already running that it has not taken is triggered there now. Once every
   * subtask ended, the final checkpoint is triggered at once.
   */
  async reportEndOfData(attempt: number, vertex: string, index: number): Promise<void> {
    const s = this.ctx.store.job();
    if (attempt !== s.attempt || s.status !== "RUNNING" || !s.plan) return;
    const id = channelId(vertex, index);
    if (s.ended.includes(id)) return;
    s.ended = [...s.ended, id];
    this.ctx.store.saveJob(s);
    const stub = this.ctx.host.subtask(s.plan.job, vertex, index);
    let running = 0;
    for (const { id: checkpointId } of this.ctx.store.pendingIds()) {
      const p = this.checkpoints.pending(checkpointId, s);
      if (!p || p.isDiscarded) continue;
      running++;
      if (p.attempt !== attempt || p.hasAcknowledged(id)) continue;
      void this.checkpoints.triggerSubtask(s, stub, checkpointId, p.triggerMs, p.isSavepoint);
    }
    if (running === 0 && s.ended.length >= planSubtasks(s.plan).length) await this.checkpoints.trigger(false);
    await this.ctx.schedule();
  }

  /** A subtask of `attempt` finished (its final checkpoint completed); the last one finishes the job. */
  async reportFinished(attempt: number, vertex: string, index: number): Promise<void> {
    const s = this.ctx.store.job();
    if (attempt !== s.attempt || s.status !== "RUNNING" || !s.plan) return;
    const id = channelId(vertex, index);
    if (!s.finished.includes(id)) s.finished = [...s.finished, id];
    if (s.finished.length >= planSubtasks(s.plan).length) {
      s.status = "FINISHED";
      s.endTime = this.ctx.now();
      this.checkpoints.abortPending("JOB_STOPPED", "the job finished");
    }
    this.ctx.store.saveJob(s);
    await this.ctx.schedule();
  }
}
