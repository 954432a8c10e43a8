/**
 * The coordinator's logic, free of Cloudflare imports: the Coordinator
 * object (coordinator.ts) is a shell around it, and the simulator
 * (test/sim/sim-coordinator.ts) builds it the same way over simulated
 * objects, storage and time. One per job: its job master.
 *
 * It composes the parts, each a lifecycle step with its state in one place:
 * {@link JobControl} (start, cancel, status, triggers), the
 * {@link CheckpointCoordinator} (trigger, ack, complete, fail, retain),
 * {@link EndOfInput} (a bounded job's end), {@link Failover} (restart
 * strategies, deploy of an attempt) and {@link Heartbeats}, the last four
 * sharing the object's one alarm ({@link SharedAlarm}).
 */
import type { AckResult } from "../../checkpoint/pending-checkpoint.js";
import type { SubtaskAck } from "../../checkpoint/types.js";
import { CheckpointCoordinator } from "./checkpoint-coordinator.js";
import { CoordinatorContext, type CoordinatorHost } from "./coordinator-context.js";
import { EndOfInput } from "./end-of-input.js";
import { Failover } from "./failover.js";
import { Heartbeats } from "./heartbeats.js";
import { JobControl } from "./job-control.js";
import { SharedAlarm } from "./shared-alarm.js";
import { StreamPins } from "./stream-pins.js";

export type { CoordinatorHost };
export { DEPLOY_TIMEOUT_MS } from "./failover.js";
export { HEARTBEAT_INTERVAL_MS, HEARTBEAT_TIMEOUT_MS } from "./heartbeats.js";
export type { JobStatus, JobStatusName, SavepointAction, SavepointFormat, SavepointStatus, StartRequest } from "../messages.js";

/** The coordinator of one job: its parts, composed the one way the shell and the simulator both build it. */
export class CoordinatorCore {
  private readonly ctx: CoordinatorContext;
  private readonly checkpoints: CheckpointCoordinator;
  private readonly endOfInput: EndOfInput;
  private readonly failover: Failover;
  private readonly heartbeats: Heartbeats;
  private readonly jobs: JobControl;
  private readonly sharedAlarm: SharedAlarm;
  private readonly streams: StreamPins;

  constructor(host: CoordinatorHost) {
    // Every change of status ends with a schedule: that is where an ended run lets go of its streams.
    this.ctx = new CoordinatorContext(host, async () => {
      await this.sharedAlarm.schedule();
      this.streams.afterTransition();
    });
    this.streams = new StreamPins(this.ctx);
    this.failover = new Failover(this.ctx, {
      abortPending: (reason, message) => this.checkpoints.abortPending(reason, message),
      deployedAt: (nowMs) => this.heartbeats.deployedAt(nowMs),
    });
    this.checkpoints = new CheckpointCoordinator(this.ctx, {
      failover: (cause) => this.failover.failover(cause),
      cancelSubtasks: (s) => this.ctx.cancelSubtasks(s),
      completed: (s, metadata) => this.streams.checkpointCompleted(s, metadata),
    });
    this.endOfInput = new EndOfInput(this.ctx, this.checkpoints);
    this.heartbeats = new Heartbeats(this.ctx, {
      failover: (cause) => this.failover.failover(cause),
      reportFinished: (attempt, vertex, index) => this.endOfInput.reportFinished(attempt, vertex, index),
    });
    this.jobs = new JobControl(this.ctx, this.checkpoints, this.failover, this.streams);
    // In this order at each firing: a due restart first, then timeouts before heartbeats before the next trigger.
    this.sharedAlarm = new SharedAlarm([this.failover, this.checkpoints.timeouts, this.heartbeats, this.checkpoints.periodicTrigger], host);
  }

  /**
   * Called when the object starts. Checkpoints pending from before are
   * failed: the triggers of the object that died may not all have been
   * sent, and a checkpoint no subtask heard of would wait for its timeout
   * (a bounded job's final checkpoint with it). The next one is triggered
   * as usual. A live job always has an alarm, in case one was lost.
   */
  async afterRestart(hasAlarm: boolean): Promise<void> {
    let s = this.ctx.store.job();
    if (s.status === "RUNNING") {
      for (const p of this.ctx.store.pendingIds()) {
        await this.checkpoints.fail(p.id, "COORDINATOR_RESTARTED", `checkpoint ${p.id} was pending when the coordinator restarted`);
        hasAlarm = true; // fail() schedules the alarm
      }
      s = this.ctx.store.job();
    }
    if ((s.status === "RUNNING" || s.status === "RESTARTING") && !hasAlarm) await this.ctx.host.setAlarm(this.ctx.now());
    // An end whose release was lost with the object that died: released again (it is idempotent).
    this.streams.afterTransition();
  }

  // ---- job control (HTTP) ------------------------------------------------

  start(...a: Parameters<JobControl["start"]>) {
    return this.jobs.start(...a);
  }
  status(...a: Parameters<JobControl["status"]>) {
    return this.jobs.status(...a);
  }
  cancel(...a: Parameters<JobControl["cancel"]>) {
    return this.jobs.cancel(...a);
  }
  triggerSavepoint(...a: Parameters<JobControl["triggerSavepoint"]>) {
    return this.jobs.triggerSavepoint(...a);
  }
  savepointStatus(...a: Parameters<JobControl["savepointStatus"]>) {
    return this.jobs.savepointStatus(...a);
  }
  triggerCheckpointNow(...a: Parameters<JobControl["triggerCheckpointNow"]>) {
    return this.jobs.triggerCheckpointNow(...a);
  }
  checkpointOverview(...a: Parameters<JobControl["checkpointOverview"]>) {
    return this.jobs.checkpointOverview(...a);
  }
  checkpointDetail(...a: Parameters<JobControl["checkpointDetail"]>) {
    return this.jobs.checkpointDetail(...a);
  }
  metrics(...a: Parameters<JobControl["metrics"]>) {
    return this.jobs.metrics(...a);
  }

  // ---- reports from subtasks ---------------------------------------------

  acknowledgeCheckpoint(ack: SubtaskAck & { checkpointId: number }): Promise<AckResult> {
    return this.checkpoints.acknowledge(ack);
  }
  declineCheckpoint(attempt: number, checkpointId: number, reason: string): Promise<void> {
    return this.checkpoints.decline(attempt, checkpointId, reason);
  }
  /** A subtask of `attempt` failed: the job fails over. */
  reportFailure(attempt: number, message: string): Promise<void> {
    return this.failover.reportFailure(attempt, message);
  }
  reportEndOfData(attempt: number, vertex: string, index: number): Promise<void> {
    return this.endOfInput.reportEndOfData(attempt, vertex, index);
  }
  reportFinished(attempt: number, vertex: string, index: number): Promise<void> {
    return this.endOfInput.reportFinished(attempt, vertex, index);
  }

  // ---- the alarm -----------------------------------------------------------

  /** The object's alarm fired: restarts, checkpoint timeouts, heartbeats and the next trigger, as due. */
  alarm(): Promise<void> {
    return this.sharedAlarm.run();
  }

  /** Checks every subtask now (tests call it instead of waiting for the alarm). */
  heartbeatNow(): Promise<void> {
    return this.heartbeats.heartbeat();
  }
}
